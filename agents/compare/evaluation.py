"""Every compared agent through the one evaluator (``agents.evaluator.evaluate_actor``) on the same held-out
dialogues: LM agents on ``Dialogue-v0``, predict agents on the env their observations come from."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .config import CompareConfig


class _Evaluator:
    """Runs one reply per evaluation dialogue through the batched envs, for LM agents and predict agents, and
    turns them into ``agents.evaluate`` rows (same reward, KL, NLL, length fields as ``dialogue-rl evaluate``)."""

    def __init__(self, cfg: CompareConfig, ref_lm):
        import dialogue_env

        self.cfg = cfg
        self.ref_lm = ref_lm
        dialogues = dialogue_env.load_dataset(cfg.dataset, cfg.eval_split)
        n = len(dialogues) if cfg.eval_limit is None else min(cfg.eval_limit, len(dialogues))
        # An evenly spaced subset covers every intent of the (intent-ordered) split.
        self.indices = sorted({int(round(x)) for x in np.linspace(0, len(dialogues) - 1, n)})
        self.B = min(cfg.eval_batch_size, len(self.indices))
        self._envs: dict[str, Any] = {}

    def env(self, kind: str):
        if kind not in self._envs:
            import gymnasium as gym

            from dialogue_env.wrappers import TopKFeaturesVector

            kwargs = self.cfg.env_kwargs(self.cfg.eval_split)
            if kind in ("tokens", "lm"):  # an LM actor reads no observations: keep them as tensors, no host copies
                venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=self.B,
                                    vectorization_mode="vector_entry_point", return_tensors=kind == "lm", **kwargs)
            else:
                venv = gym.make_vec("dialogue_env/DialogueTopK-v0", num_envs=self.B,
                                    vectorization_mode="vector_entry_point", k=self.cfg.k, **kwargs)
                if kind == "features":
                    venv = TopKFeaturesVector(venv)
            self._envs[kind] = venv
        return self._envs[kind]

    def run_lm(self, lm, *, greedy: bool, seed: int, progress=None):
        """Replies written by ``lm`` (sampling at ``cfg.temperature`` or greedy) through Dialogue-v0. KL: of the
        distribution sampled from (temperature-scaled; a point mass when greedy) to the reference at temperature 1."""
        from agents.evaluator import evaluate_actor, reply_logprobs

        def logprobs(ro):
            lps = reply_logprobs(lm, ro, (1.0,) if greedy else (self.cfg.temperature, 1.0))
            act_logp = torch.zeros_like(lps[-1]) if greedy else lps[0]
            ref_logp = lps[-1] if lm is self.ref_lm else reply_logprobs(self.ref_lm, ro)[0]
            return act_logp, ref_logp.to(act_logp.device)

        rows, stats = evaluate_actor(self.env("lm"), lm, self.indices, logprobs, temperature=self.cfg.temperature,
                                     greedy=greedy, generator=torch.Generator().manual_seed(seed), progress=progress)
        return rows, stats["env_steps"], stats["seconds"]

    def run_predict(self, agent, kind: str, *, deterministic: bool, seed: int, progress=None):
        """Replies written by ``agent.predict`` through the batched TopK (or Dialogue-v0) env. KL: from the agent's
        ``action_log_prob`` (unknown for a stochastic agent without one); the reference log-probs come from the TopK
        env's ``info["ref_logprob"]``, or from one teacher-forced reference forward on Dialogue-v0."""
        from agents.evaluator import evaluate_actor, reply_logprobs

        def logprobs(ro):
            ref_logp = ro.ref_logprobs if ro.ref_logprobs is not None else reply_logprobs(self.ref_lm, ro)[0].cpu()
            return ro.logprobs, ref_logp

        rows, stats = evaluate_actor(self.env(kind), agent, self.indices, logprobs, seed=seed,
                                     deterministic=deterministic, progress=progress)
        return rows, stats["env_steps"], stats["seconds"]

    def close(self):
        for venv in self._envs.values():
            venv.close()

"""Best-of-n: sample ``n`` replies from a language model, keep the one the env's reward prefers.

A training-free baseline for the multi-turn setting (and for single replies): at the start of every agent turn, for
each sub-env, the LM samples ``n`` candidate replies to the context the env shows; the env's own reward module
(``env.unwrapped.reward_module``, the same one that will score the reply) scores all candidates of all sub-envs in
one call, with the history and reference the env reports in ``info``; the best candidate is then written token by
token. It runs through the one collector (``agents.collect.collect``) like every agent, so it is evaluated, and
compared (``dialogue-rl compare``, agent ``best-of-n``), on exactly the same env, simulator and reward. It costs
``n`` times the generation and ``n`` reward calls per reply; the outcome reward (the customer's verdict) is not
visible to it before the conversation ends.
"""

from __future__ import annotations

import numpy as np
import torch

from dialogue_env.kvcache import sample_replies


class BestOfN:
    """Best-of-``n`` sampling from ``lm`` at ``temperature`` (see the module docstring). Pass it to
    :func:`agents.collect.collect` (or the evaluator) as the actor on ``Dialogue-v0``."""

    def __init__(self, lm, n: int = 4, temperature: float = 0.7):
        if int(n) < 1:
            raise ValueError(f"best-of-n: n={n} must be at least 1")
        if temperature <= 0:
            raise ValueError(f"best-of-n: temperature={temperature} must be > 0")
        self.lm, self.n, self.temperature = lm, int(n), float(temperature)

    def __repr__(self) -> str:
        return f"BestOfN(n={self.n}, temperature={self.temperature})"

    def runner(self, venv, generator: torch.Generator | None = None) -> _BestOfNRunner:
        """The collector's runner for ``venv``; without a ``generator`` it draws from one seeded by
        ``torch.initial_seed()`` (so ``torch.manual_seed`` before an evaluation fixes its samples)."""
        return _BestOfNRunner(self, venv, generator or torch.Generator().manual_seed(torch.initial_seed()))


class _BestOfNRunner:
    """The collector's runner protocol (``start`` / ``act`` / ``observe``) for :class:`BestOfN`."""

    observes_tokens = True
    writes_tokens = True  # a multi-turn rollout of it is interleaved, like an LM's

    def __init__(self, agent: BestOfN, venv, generator: torch.Generator):
        env = venv.unwrapped
        self.agent, self.env, self.generator = agent, env, generator
        self.B = venv.num_envs
        self.plans: list[list[int]] = [[] for _ in range(self.B)]
        self.contexts: list = [[] for _ in range(self.B)]
        self.references: list = [None] * self.B

    def start(self, ids, mask, infos=None) -> None:
        infos = infos or {}
        for i in range(self.B):
            self.contexts[i] = list(infos["context"][i]) if "context" in infos else []
            self.references[i] = infos["reference"][i] if "reference" in infos else None
        self._plan(np.arange(self.B), ids, mask)

    def act(self, obs, filler: int, done: np.ndarray):
        actions = [filler if done[i] or not self.plans[i] else self.plans[i].pop(0) for i in range(self.B)]
        return torch.as_tensor(actions, dtype=torch.long), None

    def observe(self, tokens, active, new_context, env, infos=None) -> None:
        rows = np.nonzero(new_context)[0]
        if not rows.size:
            return
        for i in rows:
            self.contexts[i] = list(infos["next_context"][i])
            self.references[i] = infos["next_reference"][i]
        ids, mask = env.context_tokens(rows)
        self._plan(rows, ids, mask)

    def _plan(self, rows, ids, mask) -> None:
        """Sample ``n`` candidates per row (contexts encoded once), score them in one reward call, keep the best."""
        n, env = self.agent.n, self.env
        ids, mask = ids.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)  # (R n, S)
        candidates = sample_replies(self.agent.lm, ids, mask, max_new_tokens=env.max_new_tokens,
                                    eos_ids=env.eos_token_ids, generators=[self.generator] * len(ids),
                                    temperature=self.agent.temperature, share=True)
        eos = set(env.eos_token_ids)
        texts = [t.strip() for t in env.tokenizer.batch_decode(
            [c[:-1] if c and c[-1] in eos else c for c in candidates], skip_special_tokens=True)]
        contexts = [self.contexts[r] for r in rows for _ in range(n)]
        references = [self.references[r] for r in rows for _ in range(n)]
        scores = np.asarray(env.reward_module.score(contexts, texts, references=references).total).reshape(-1, n)
        for k, r in enumerate(rows):
            self.plans[r] = list(candidates[k * n + int(np.argmax(scores[k]))])


__all__ = ["BestOfN"]

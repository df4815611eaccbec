"""``dialogue_env/DialogueTopK-v0``: the token MDP of ``Dialogue-v0`` with ``Discrete(k)`` actions over the reference
LM's k most likely next tokens (NLPO-style action masking), and its batched twin.

The frozen reference LM lives in the env: after every step it has already computed the next-token distribution of
the current context, so the observation carries the top-k token ids, their log-probabilities and the LM's last
hidden state. The LM's KV cache is kept across the steps of a reply: the context is encoded once per reply (at
reset, and again when a multi-turn episode adds the next user turn), then each step feeds only the new token.
``dialogue_env.wrappers.TopKFeatures`` turns the observation into one fixed-size float vector for Stable-Baselines3.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from rewards.utils import ConfigError

from .core import integer_array
from .envs import DialogueEnv, DialogueVectorEnv
from .kvcache import CachedDecoder
from .models import load_policy

LOGPROB_FLOOR = -100.0  # top-k log-probs are clamped here (e^-100 is zero for every practical purpose)
DEFAULT_K = 50


@functools.lru_cache(maxsize=4)
def reference_lm(model: str, device: str = "cpu"):
    """The frozen reference LM for ``model`` on ``device``, loaded once per process and shared by every TopK env
    (it is only read, under ``torch.no_grad``)."""
    lm, _ = load_policy(model, device=device)
    lm.requires_grad_(False)
    return lm.eval()


class TopKReference:
    """The reference LM's state for the ``N`` rows of a dialogue batch: a :class:`~dialogue_env.kvcache.CachedDecoder`
    (one batched KV cache; rows that start a new context are encoded and spliced in), and for every row the
    next-token top-k (ids and log-probs) and the last hidden state of the current context."""

    def __init__(self, lm, num_rows: int, k: int):
        self.decoder = CachedDecoder(lm, num_rows, hidden_layer=-1)
        self.N = int(num_rows)
        self.k = int(k)
        self.device = self.decoder.device
        self.V = int(lm.get_output_embeddings().weight.shape[0])
        self.H = int(lm.config.hidden_size)
        if not 1 <= self.k <= self.V:
            raise ConfigError(f"k={k} must be in 1..{self.V} (the model's vocabulary size)")
        self.topk_ids = torch.zeros((self.N, self.k), dtype=torch.long, device=self.device)  # (N, k)
        self.topk_logprobs = torch.zeros((self.N, self.k), dtype=torch.float32, device=self.device)  # (N, k)
        self.hidden = torch.zeros((self.N, self.H), dtype=torch.float32, device=self.device)  # (N, H)

    @property
    def kv_mask(self) -> torch.Tensor:
        return self.decoder.kv_mask

    def _set_outputs(self, rows: torch.Tensor, logits: torch.Tensor, hidden: torch.Tensor) -> None:
        logp = torch.log_softmax(logits.float(), dim=-1)  # (M, V)
        values, ids = torch.topk(logp, self.k, dim=-1)  # (M, k), sorted: action 0 = most likely
        self.topk_ids[rows] = ids
        self.topk_logprobs[rows] = values.clamp(min=LOGPROB_FLOOR)
        self.hidden[rows] = hidden.float()

    @torch.no_grad()
    def prefill(self, rows, ids: torch.Tensor, mask: torch.Tensor) -> None:
        """Encode new contexts for ``rows``: ``ids``/``mask`` (M, Sn), left-padded; replaces those rows' cache."""
        logits, hidden = self.decoder.prefill(rows, ids, mask)
        rows = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.device)
        self._set_outputs(rows, logits, hidden[:, -1])

    @torch.no_grad()
    def advance(self, tokens: torch.Tensor, active: torch.Tensor) -> None:
        """Append ``tokens[i]`` (N,) to every row where ``active[i]``; the other rows get a masked column."""
        active = active.to(self.device).bool()
        logits, hidden = self.decoder.advance(tokens, active)
        rows = torch.nonzero(active).flatten()
        if rows.numel():
            self._set_outputs(rows, logits[rows], hidden[rows, -1])


def _topk_spaces(base: spaces.Dict, k: int, V: int, H: int) -> spaces.Dict:
    return spaces.Dict({
        **base.spaces,
        "topk_ids": spaces.Box(0, V - 1, (k,), dtype=np.int64),
        "topk_logprobs": spaces.Box(LOGPROB_FLOOR, 0.0, (k,), dtype=np.float32),
        "hidden": spaces.Box(-np.inf, np.inf, (H,), dtype=np.float32),
        "reply_progress": spaces.Box(0.0, 1.0, (1,), dtype=np.float32),
    })


def _check_indices(actions, n_rows: int, k: int) -> torch.Tensor:
    a = integer_array(actions, f"indices into the top-k, in [0, {k - 1}] (Discrete({k}))")
    a = a.astype(np.int64).reshape(-1)
    if a.size != n_rows:
        raise ValueError(f"expected {n_rows} action(s) (one top-k index per env), got {a.size}")
    bad = (a < 0) | (a >= k)
    if bad.any():
        raise ValueError(f"action out of range for env(s) {np.nonzero(bad)[0].tolist()}: {a[bad].tolist()}; an action "
                         f"is the index of one of the reference's k={k} most likely tokens (Discrete({k}))")
    return torch.as_tensor(a)


def _resolve_lm(lm, model, device):
    if lm is not None:
        return lm.eval()
    if not isinstance(model, str):
        raise TypeError(f"model={model!r} must be a model name or path; to use your own model pass lm=... as well")
    return reference_lm(model, str(torch.device(device)))


class DialogueTopKEnv(DialogueEnv):
    """Dialogue generation as a token-level MDP whose actions are the reference LM's ``k`` most likely next tokens.

    ## Description
    The same MDP as ``dialogue_env/Dialogue-v0`` (same dialogues, reward, episode end; see
    ``help(dialogue_env.envs.DialogueEnv)``), with the action set restricted the way NLPO does it: at every step the
    frozen reference LM ranks the vocabulary for the current context and action ``i`` appends its ``i``-th most
    likely token. Off-the-shelf RL agents (SB3 PPO, A2C, DQN) can learn in this space; in ``Discrete(V)`` with
    ``V = 49152`` they cannot. The reference LM is part of the env (frozen, no gradients); its KV cache is reused
    across the steps of a reply, so a step costs one single-token forward.

    ## Action space
    ``Discrete(k)``: index ``i`` appends ``obs["topk_ids"][i]``, the reference's ``i``-th most likely next token
    (``i = 0`` is the greedy token). An index outside ``[0, k)`` raises ``ValueError``.

    ## Observation space
    ``Dict`` with Dialogue-v0's two keys and four more, all describing the state the next action acts on:

    - ``input_ids`` ``Box(0, V-1, (L,), int64)``, ``attention_mask`` ``Box(0, 1, (L,), int8)``: the left-padded
      chat-templated context plus the reply so far, exactly as in Dialogue-v0 (``L = max_context_tokens +
      max_new_tokens``).
    - ``topk_ids`` ``Box(0, V-1, (k,), int64)``: the token each action appends, most likely first.
    - ``topk_logprobs`` ``Box(-100, 0, (k,), float32)``: their log-probabilities under the reference, from the
      full-vocabulary softmax (so they sum to at most 1 in probability), clamped at -100.
    - ``hidden`` ``Box(-inf, inf, (H,), float32)``: the reference's last hidden state (after the final norm) at the
      current position, the vector its next-token logits are computed from (H = 576 for SmolLM2).
    - ``reply_progress`` ``Box(0, 1, (1,), float32)``: tokens written in the current reply / ``max_new_tokens``.

    ``dialogue_env.wrappers.TopKFeatures`` flattens this into one bounded float vector for SB3's ``MlpPolicy``.

    ## Rewards
    As Dialogue-v0: 0 on every token except the last of a reply, which gets the reward module's total;
    ``info["reward_components"]`` holds each component. No KL term: the env is policy-agnostic.

    ## Episode end
    As Dialogue-v0: ``terminated`` when the chosen token ends the reply (``<|im_end|>`` or EOS) on the last turn,
    ``truncated`` at ``max_new_tokens``. The final observation still carries the reference's top-k for the context
    it ends on (value bootstrapping after truncation needs it).

    ## Starting state
    As Dialogue-v0 (``options={"dialogue_index": i}`` or ``{"dialogue_id": "..."}`` pick a dialogue).

    ## Info
    As Dialogue-v0, plus on every step: ``token_id`` (the token the action appended) and ``ref_logprob`` (its
    log-probability under the reference, as in ``topk_logprobs``). An agent that reads ``TopKFeatures`` vectors (no
    token ids) learns what it wrote from these.

    ## Arguments
    Every argument of Dialogue-v0 (``model``, ``dataset``, ``split``, ``reward``, ``max_new_tokens``,
    ``max_context_tokens``, ``turns``, ``system_prompt``, ``user_simulator``, ``device``, ``render_mode``,
    ``tokenizer``), plus:

    - ``k`` (50): the number of actions.
    - ``lm`` (None): the reference model to rank tokens with; None loads ``model`` with ``load_policy`` once per
      process and shares it between envs. It must use the tokenizer of ``model``.

    ## Version history
    - v0: first release; ``info["token_id"]`` and ``info["ref_logprob"]`` on every step added without a version
      bump (no existing key changed).
    """

    def __init__(self, model="smollm2-135m", dataset="customer_service", split="train", reward=None,
                 max_new_tokens=48, max_context_tokens=512, turns=1, system_prompt="auto", user_simulator="replay",
                 device="cpu", render_mode=None, tokenizer=None, k: int = DEFAULT_K, lm=None, outcome_reward="auto",
                 simulator_model="smollm2-135m"):
        super().__init__(model=model, dataset=dataset, split=split, reward=reward, max_new_tokens=max_new_tokens,
                         max_context_tokens=max_context_tokens, turns=turns, system_prompt=system_prompt,
                         user_simulator=user_simulator, device=device, render_mode=render_mode, tokenizer=tokenizer,
                         outcome_reward=outcome_reward, simulator_model=simulator_model)
        self.lm = _resolve_lm(lm, model, device)
        self.ref = TopKReference(self.lm, 1, k)
        if self.ref.V < self.batch.V:
            raise ValueError(f"the reference LM has {self.ref.V} output logits but the env's vocabulary has "
                             f"{self.batch.V} tokens: lm= must match model={model!r}")
        self.k = int(k)
        self.observation_space = _topk_spaces(self.observation_space, self.k, self.batch.V, self.ref.H)
        self.action_space = spaces.Discrete(self.k)

    def _topk_obs(self, base: dict) -> dict:
        return {**base,
                "topk_ids": self.ref.topk_ids[0].cpu().numpy().copy(),
                "topk_logprobs": self.ref.topk_logprobs[0].cpu().numpy().copy(),
                "hidden": self.ref.hidden[0].cpu().numpy().copy(),
                "reply_progress": np.asarray([float(self.batch.n_gen[0]) / self.batch.max_new_tokens],
                                             dtype=np.float32)}

    def _prefill(self) -> None:
        n = int(self.batch.mask[0].sum())
        self.ref.prefill([0], self.batch.ids[:, -n:], self.batch.mask[:, -n:])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        self._prefill()
        return self._topk_obs(obs), info

    def step(self, action):
        index = _check_indices([action], 1, self.k)
        if self._needs_reset:
            raise RuntimeError("the episode is over (or never started): call env.reset() before env.step()")
        token = self.ref.topk_ids[0, index.to(self.ref.device)]  # (1,)
        ref_logprob = float(self.ref.topk_logprobs[0, index.to(self.ref.device)])
        obs, reward, terminated, truncated, info = super().step(int(token))
        info = {**info, "token_id": int(token), "ref_logprob": ref_logprob}
        self.ref.advance(token, torch.ones(1, dtype=torch.bool))
        if info and not (terminated or truncated):  # a reply ended and the episode goes on: new context
            self._prefill()
        return self._topk_obs(obs), reward, terminated, truncated, info

    def token_of(self, action: int) -> int:
        """The token id action ``action`` appends in the current state."""
        return int(self.ref.topk_ids[0, int(_check_indices([action], 1, self.k)[0])])


class DialogueTopKVectorEnv(DialogueVectorEnv):
    """``num_envs`` copies of ``DialogueTopK-v0`` stepped together: the dialogue state as tensors (as in Dialogue-v0's
    twin) and one batched reference forward per step (one single-token forward for all envs, with a shared KV cache;
    envs that start a new context are encoded together and spliced into the cache).

    Made by ``gym.make_vec("dialogue_env/DialogueTopK-v0", num_envs=N, vectorization_mode="vector_entry_point",
    ...)`` with ``DialogueTopK-v0``'s keyword arguments plus ``return_tensors``. Seeding, next-step autoreset and
    ``reset(options={"reset_mask": ..., "dialogue_indices": ...})`` work as in ``DialogueVectorEnv``. Observations
    are batched (N, ...) versions of the single env's; a batched forward pads rows, so values can differ from the
    single env's in the last float digits (tested to give the same top-k tokens).
    """

    def __init__(self, num_envs: int = 1, model="smollm2-135m", dataset="customer_service", split="train",
                 reward=None, max_new_tokens=48, max_context_tokens=512, turns=1, system_prompt="auto",
                 user_simulator="replay", device="cpu", render_mode=None, tokenizer=None, return_tensors=False,
                 k: int = DEFAULT_K, lm=None, outcome_reward="auto", simulator_model="smollm2-135m"):
        super().__init__(num_envs=num_envs, model=model, dataset=dataset, split=split, reward=reward,
                         max_new_tokens=max_new_tokens, max_context_tokens=max_context_tokens, turns=turns,
                         system_prompt=system_prompt, user_simulator=user_simulator, device=device,
                         render_mode=render_mode, tokenizer=tokenizer, return_tensors=return_tensors,
                         outcome_reward=outcome_reward, simulator_model=simulator_model)
        self.lm = _resolve_lm(lm, model, device)
        self.ref = TopKReference(self.lm, self.num_envs, k)
        if self.ref.V < self.batch.V:
            raise ValueError(f"the reference LM has {self.ref.V} output logits but the env's vocabulary has "
                             f"{self.batch.V} tokens: lm= must match model={model!r}")
        self.k = int(k)
        self.single_observation_space = _topk_spaces(self.single_observation_space, self.k, self.batch.V, self.ref.H)
        self.single_action_space = spaces.Discrete(self.k)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)

    def _topk_obs(self, base: dict) -> dict:
        progress = (self.batch.n_gen.float() / self.batch.max_new_tokens).unsqueeze(1)  # (N, 1)
        extra = {"topk_ids": self.ref.topk_ids, "topk_logprobs": self.ref.topk_logprobs, "hidden": self.ref.hidden,
                 "reply_progress": progress}
        if self.return_tensors:
            return {**base, **{k: v.clone() for k, v in extra.items()}}
        return {**base, **{k: v.cpu().numpy().copy() for k, v in extra.items()}}

    def _prefill(self, rows: np.ndarray) -> None:
        if rows.size == 0:
            return
        rows_t = torch.as_tensor(rows, device=self.batch.device)
        n = int(self.batch.mask[rows_t].sum(1).max())
        self.ref.prefill(rows, self.batch.ids[rows_t, -n:], self.batch.mask[rows_t, -n:])

    def reset(self, *, seed=None, options=None):
        obs, infos = super().reset(seed=seed, options=options)  # checks the options first
        mask = np.asarray((options or {}).get("reset_mask", np.ones(self.num_envs, dtype=bool)), dtype=bool)
        self._prefill(np.nonzero(mask)[0])
        return self._topk_obs(obs), infos

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        index = _check_indices(actions.cpu().numpy() if torch.is_tensor(actions) else actions, self.num_envs, self.k)
        index = index.to(self.ref.device).unsqueeze(1)  # (N, 1)
        tokens = self.ref.topk_ids.gather(1, index).squeeze(1)  # (N,)
        ref_logprobs = self.ref.topk_logprobs.gather(1, index).squeeze(1)  # (N,)
        resetting = self._autoreset.copy()  # these envs ignore their action and start a new episode
        obs, rewards, terminated, truncated, infos = super().step(tokens.to(self.batch.device))
        acted = ~resetting
        infos = {**infos, "token_id": tokens.cpu().numpy(), "_token_id": acted,
                 "ref_logprob": ref_logprobs.cpu().numpy().astype(np.float64), "_ref_logprob": acted.copy()}
        self.ref.advance(tokens, torch.as_tensor(~resetting))
        reply_ended = np.asarray(infos.get("_response", np.zeros(self.num_envs, dtype=bool)), dtype=bool)
        new_context = resetting | (reply_ended & ~(terminated | truncated))
        self._prefill(np.nonzero(new_context)[0])
        return self._topk_obs(obs), rewards, terminated, truncated, infos


__all__ = ["DEFAULT_K", "LOGPROB_FLOOR", "DialogueTopKEnv", "DialogueTopKVectorEnv", "TopKReference", "reference_lm"]

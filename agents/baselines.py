"""Simple baselines with Stable-Baselines3's ``predict`` interface: a random agent and the reference LM (zero-shot
sampling, or greedy).

Every agent here has

- ``predict(observation, state=None, episode_start=None, deterministic=False) -> (actions, state)``, SB3's
  signature: a single observation gives one action, a batch (the leading axis of every array) gives ``(N,)``;
- ``action_log_prob(observation, actions, deterministic=False) -> (N,)``: ``log pi(a | s)`` of the distribution it
  acts from (0 for a deterministic choice), which ``agents.compare`` uses for the KL to the reference;
- ``observation_kind``: which observation it reads, ``"topk"`` (``DialogueTopK-v0``), ``"tokens"``
  (``Dialogue-v0``) or ``"features"`` (``TopKFeatures``).

Observations are recognised by their keys: ``DialogueTopK-v0`` observations carry ``topk_logprobs`` (actions are
indices into the top-k), ``Dialogue-v0`` observations only ``input_ids`` / ``attention_mask`` (actions are token
ids). ``agents.compare`` runs the reference LM through its own batched, KV-cached generation path; the
``predict`` of ``ReferenceAgent`` on ``Dialogue-v0`` observations re-encodes the whole context every call
(correct, but O(context) per token), for use in your own loops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from gymnasium import spaces

from dialogue_env.kvcache import position_ids

__all__ = ["RandomAgent", "ReferenceAgent"]


def _batched(observation) -> tuple[bool, int]:
    """(is the observation a batch, its size). A TopK / Dialogue-v0 observation is batched when its ``input_ids``
    is 2-D; an array observation when it is 2-D."""
    if isinstance(observation, Mapping):
        key = "input_ids" if "input_ids" in observation else next(iter(observation))
        arr = np.asarray(observation[key])
    else:
        arr = np.asarray(observation)
    if arr.ndim >= 2:
        return True, int(arr.shape[0])
    return False, 1


class RandomAgent:
    """Uniform random actions over a ``Discrete(n)`` action space (default: the ``k = 50`` actions of
    ``DialogueTopK-v0``, i.e. a uniformly random choice among the reference's 50 most likely tokens).

    ``seed`` seeds its own generator; ``reseed(seed)`` restarts it (the comparison does, per evaluation seed)."""

    def __init__(self, n_actions: int | spaces.Discrete = 50, seed: int | None = 0, observation_kind: str = "topk"):
        n = n_actions.n if isinstance(n_actions, spaces.Discrete) else int(n_actions)
        if n < 1:
            raise ValueError(f"n_actions={n_actions} must be at least 1")
        self.n = n
        self.observation_kind = observation_kind
        self.action_space = spaces.Discrete(n)
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        batched, n = _batched(observation)
        actions = self.rng.integers(self.n, size=n)
        return (actions if batched else actions[0]), state

    def action_log_prob(self, observation, actions, deterministic: bool = False) -> np.ndarray:
        return np.full(np.asarray(actions).reshape(-1).shape, -math.log(self.n))


class ReferenceAgent:
    """The reference language model as a zero-shot agent: samples from ``softmax(logits / temperature)`` or, with
    ``greedy=True`` (or ``predict(..., deterministic=True)``), takes the most likely token.

    On ``DialogueTopK-v0`` observations it acts on the top-k only (top-k sampling from ``topk_logprobs``; greedy is
    action 0), with no forward pass. On ``Dialogue-v0`` observations it runs the LM on the unpadded context.

    Args:
        model: a model name for ``dialogue_env.load_policy`` (ignored when ``lm`` is given).
        greedy: always take the most likely token.
        temperature: sampling temperature (> 0).
        seed: seeds the sampling generator (``reseed`` restarts it).
        lm: an already loaded causal LM to use instead of loading ``model``.
        observation_kind: the observations ``agents.compare`` should give it ("tokens" or "topk").
    """

    def __init__(self, model: str = "smollm2-135m", *, greedy: bool = False, temperature: float = 1.0,
                 seed: int | None = 0, device: str = "cpu", lm=None, observation_kind: str = "tokens"):
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0 (use greedy=True for argmax decoding)")
        if observation_kind not in ("tokens", "topk"):
            raise ValueError(f"observation_kind={observation_kind!r}: use 'tokens' (Dialogue-v0) or 'topk'")
        self.model_name = model
        self.greedy = bool(greedy)
        self.temperature = float(temperature)
        self.device = device
        self.observation_kind = observation_kind
        self._lm = lm
        self.generator = torch.Generator().manual_seed(int(seed or 0))

    @property
    def lm(self):
        """The LM (loaded on first use, shared with the TopK envs of the same model)."""
        if self._lm is None:
            from dialogue_env.topk import reference_lm

            self._lm = reference_lm(self.model_name, str(torch.device(self.device)))
        return self._lm

    def reseed(self, seed: int | None) -> None:
        self.generator = torch.Generator().manual_seed(int(seed or 0))

    @torch.no_grad()
    def _logits(self, observation) -> torch.Tensor:
        """Next-token scores (N, A): top-k log-probs for TopK observations, the LM's logits for Dialogue-v0 ones."""
        if not isinstance(observation, Mapping):
            raise TypeError("ReferenceAgent reads Dialogue-v0 or DialogueTopK-v0 observations (dicts with input_ids), "
                            f"not {type(observation).__name__}; TopKFeatures vectors do not identify tokens")
        if "topk_logprobs" in observation:
            return torch.as_tensor(np.asarray(observation["topk_logprobs"], dtype=np.float32)).reshape(
                -1, np.asarray(observation["topk_logprobs"]).shape[-1])
        ids = torch.as_tensor(np.asarray(observation["input_ids"])).reshape(-1, np.asarray(observation["input_ids"]).shape[-1])
        mask = torch.as_tensor(np.asarray(observation["attention_mask"])).reshape(ids.shape).long()
        keep = int(mask.sum(1).max())
        ids, mask = ids[:, -keep:], mask[:, -keep:]
        device = next(self.lm.parameters()).device
        pos = position_ids(mask)
        out = self.lm(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device),
                      use_cache=False, logits_to_keep=1)
        return out.logits[:, -1].float().cpu()  # (N, V)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        batched, _ = _batched(observation)
        scores = self._logits(observation)  # (N, A)
        if self.greedy or deterministic:
            actions = scores.argmax(-1)
        else:
            probs = torch.softmax(scores / self.temperature, dim=-1)
            actions = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
        actions = actions.numpy()
        return (actions if batched else actions[0]), state

    def action_log_prob(self, observation, actions, deterministic: bool = False) -> np.ndarray:
        a = torch.as_tensor(np.asarray(actions)).reshape(-1).long()
        if self.greedy or deterministic:
            return np.zeros(a.shape[0])
        logp = torch.log_softmax(self._logits(observation) / self.temperature, dim=-1)
        return logp.gather(1, a.unsqueeze(1)).squeeze(1).numpy().astype(np.float64)

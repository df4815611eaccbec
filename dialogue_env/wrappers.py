"""Observation wrappers that turn ``DialogueTopK-v0``'s dictionary observation into one fixed-size float vector.

SB3's ``MlpPolicy`` (PPO, A2C, DQN) wants a flat ``Box``. ``TopKFeatures`` (single env) and ``TopKFeaturesVector``
(the batched twin) give it, for ``H`` = the reference LM's hidden size and ``k`` = the number of actions::

    features = [ standardise(hidden)          (H,)   the reference's last hidden state, shifted and scaled to zero
                                                     mean and unit variance over its H entries, clipped to [-10, 10]
               , clip(topk_logprobs, -20, 0) / 10   (k,)   the reference's log-probs of the k actions, in [-2, 0]
               , reply_progress ]            (1,)   tokens written in this reply / max_new_tokens, in [0, 1]

so the policy sees what the frozen LM "thinks" of the context, how likely the reference finds each action, and how
much of the token budget is left. Nothing here is learned: the map is a fixed function of the observation, so the
wrapped env keeps the raw env's determinism.
"""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

HIDDEN_CLIP = 10.0
LOGPROB_CLIP = 20.0
LOGPROB_SCALE = 10.0


def topk_features(obs: Mapping) -> np.ndarray:
    """The feature vector of a TopK observation (single ``(...,)`` or batched ``(N, ...)`` arrays): see the module
    docstring. Returns float32 ``(H + k + 1,)`` or ``(N, H + k + 1)``."""
    for key in ("hidden", "topk_logprobs", "reply_progress"):
        if key not in obs:
            raise KeyError(f"observation has no {key!r}: TopKFeatures wraps dialogue_env/DialogueTopK-v0 observations "
                           f"(keys {sorted(obs)})")
    h = np.asarray(obs["hidden"], dtype=np.float32)  # (..., H)
    h = (h - h.mean(-1, keepdims=True)) / (h.std(-1, keepdims=True) + 1e-5)
    h = np.clip(h, -HIDDEN_CLIP, HIDDEN_CLIP)
    lp = np.clip(np.asarray(obs["topk_logprobs"], dtype=np.float32), -LOGPROB_CLIP, 0.0) / LOGPROB_SCALE  # (..., k)
    progress = np.asarray(obs["reply_progress"], dtype=np.float32)  # (..., 1)
    return np.concatenate([h, lp, progress], axis=-1).astype(np.float32)


def features_space(topk_space: spaces.Dict) -> spaces.Box:
    """The ``Box`` of ``topk_features`` for a single TopK observation space."""
    H = topk_space["hidden"].shape[0]
    k = topk_space["topk_logprobs"].shape[0]
    low = np.concatenate([np.full(H, -HIDDEN_CLIP), np.full(k, -LOGPROB_CLIP / LOGPROB_SCALE), [0.0]])
    high = np.concatenate([np.full(H, HIDDEN_CLIP), np.zeros(k), [1.0]])
    return spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)


def _check_topk_space(space) -> None:
    if not isinstance(space, spaces.Dict) or not {"hidden", "topk_logprobs", "reply_progress"} <= set(space.spaces):
        raise TypeError(f"TopKFeatures wraps dialogue_env/DialogueTopK-v0 (a Dict observation with hidden, "
                        f"topk_logprobs and reply_progress); got observation space {space}")


class TopKFeatures(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """``DialogueTopK-v0`` with the flat float observation of ``topk_features`` (``Box((H + k + 1,), float32)``).

    >>> env = TopKFeatures(gym.make("dialogue_env/DialogueTopK-v0", model="tiny-random", reward="length"))
    >>> env.observation_space.shape   # H = 64 for tiny-random, k = 50
    (115,)
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        _check_topk_space(env.observation_space)
        self.observation_space = features_space(env.observation_space)

    def observation(self, observation):
        return topk_features(observation)


class TopKFeaturesVector(gym.vector.VectorObservationWrapper):
    """The batched twin of ``TopKFeatures``: wraps ``gym.make_vec("dialogue_env/DialogueTopK-v0", ...)`` (any
    vectorization mode) and returns ``(N, H + k + 1)`` float32 observations."""

    def __init__(self, env: gym.vector.VectorEnv):
        super().__init__(env)
        _check_topk_space(env.single_observation_space)
        self.single_observation_space = features_space(env.single_observation_space)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, env.num_envs)

    def observations(self, observations):
        if not isinstance(observations, Mapping):
            raise TypeError("TopKFeaturesVector needs numpy observations: make the env with return_tensors=False")
        return topk_features({k: _numpy(v) for k, v in observations.items()})


def _numpy(value):
    return value.cpu().numpy() if hasattr(value, "cpu") else value


def make_topk_features_env(**kwargs) -> TopKFeatures:
    """``TopKFeatures(gym.make("dialogue_env/DialogueTopK-v0", **kwargs))``."""
    return TopKFeatures(gym.make("dialogue_env/DialogueTopK-v0", **kwargs))


def make_topk_features_vec(num_envs: int, **kwargs) -> TopKFeaturesVector:
    """``TopKFeaturesVector`` around the batched ``DialogueTopK-v0`` twin with ``num_envs`` envs."""
    return TopKFeaturesVector(gym.make_vec("dialogue_env/DialogueTopK-v0", num_envs=num_envs,
                                           vectorization_mode="vector_entry_point", **kwargs))


__all__ = ["TopKFeatures", "TopKFeaturesVector", "features_space", "make_topk_features_env", "make_topk_features_vec",
           "topk_features"]

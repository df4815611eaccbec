"""A features extractor for ``TopKFeatures`` observations, plugged into SB3 through ``policy_kwargs``.

``TopKFeatures`` vectors are ``[hidden (H), topk log-probs (k), reply progress (1)]``. ``TopKFeaturesExtractor``
compresses the reference's hidden state with a learned ``Linear(H, hidden_dim) + Tanh`` and passes the k log-probs
and the progress through unchanged, so the policy and value networks see, next to a summary of the context, how
likely the reference finds each of the actions they choose between::

    policy_kwargs = {"features_extractor_class": TopKFeaturesExtractor,
                     "features_extractor_kwargs": {"k": 50, "hidden_dim": 64}, "net_arch": [64, 64]}
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class TopKFeaturesExtractor(BaseFeaturesExtractor):
    """``(B, H + k + 1) -> (B, hidden_dim + k + 1)``: a learned projection of the hidden state, the rest as is."""

    def __init__(self, observation_space: spaces.Box, k: int, hidden_dim: int = 64):
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise TypeError(f"TopKFeaturesExtractor needs the flat Box of TopKFeatures, got {observation_space}")
        size = int(observation_space.shape[0])
        if not 0 < k < size - 1:
            raise ValueError(f"k={k} does not fit an observation of size {size} (= H + k + 1)")
        super().__init__(observation_space, features_dim=hidden_dim + k + 1)
        self.k = int(k)
        self.proj = nn.Sequential(nn.Linear(size - k - 1, hidden_dim), nn.Tanh())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        hidden, rest = observations[:, : -self.k - 1], observations[:, -self.k - 1:]  # (B, H), (B, k + 1)
        return torch.cat([self.proj(hidden), rest], dim=1)


__all__ = ["TopKFeaturesExtractor"]

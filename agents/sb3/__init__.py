"""Stable-Baselines3 baselines (PPO, A2C, DQN) on ``DialogueTopK-v0``: training, saving and loading through SB3's
public API. See ``agents.sb3.train``."""

from .policies import TopKFeaturesExtractor
from .train import (
    ALGOS,
    DEFAULT_HYPERPARAMS,
    BudgetCallback,
    LearningCurveCallback,
    SB3Run,
    default_policy_kwargs,
    load_sb3,
    make_sb3_env,
    save_sb3,
    sb3_action_log_prob,
    train_sb3,
)
from .vec_env import GymVectorToSB3, split_infos

__all__ = [
    "ALGOS", "DEFAULT_HYPERPARAMS", "BudgetCallback", "GymVectorToSB3", "LearningCurveCallback", "SB3Run",
    "TopKFeaturesExtractor", "default_policy_kwargs", "load_sb3", "make_sb3_env", "sb3_action_log_prob", "save_sb3",
    "split_infos", "train_sb3",
]

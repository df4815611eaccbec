"""Agents: token-level PPO, Stable-Baselines3 baselines and simple baselines (random, reference LM)."""

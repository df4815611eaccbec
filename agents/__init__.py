"""Agents: token-level PPO, Stable-Baselines3 baselines and simple baselines (random, reference LM), and the programs
that drive them: the ``dialogue-rl`` command line (:mod:`agents.cli`), the episode demo (:mod:`agents.demo`), the
preference-annotation app (:mod:`agents.annotate`) and reward-model training (:mod:`agents.reward_model`).

The top layer: agents imports dialogue_env and rewards, never the other way round (``lint-imports`` checks it).
"""

"""Token-level PPO for language models: pure maths in ``functional`` and ``kl``, the training loop on top."""

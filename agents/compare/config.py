"""``CompareConfig``: the settings of ``dialogue-rl compare`` (YAML keys = field names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rewards.utils import ConfigBase

DEFAULT_AGENTS = ("ppo", "sb3-ppo", "sb3-a2c", "sb3-dqn", "reference", "reference-greedy", "random")
OBSERVATION_KINDS = ("features", "topk", "tokens")
CURVES_PNG_SIZE = (1200, 450)  # pixels (width, height) of curves.png
COMPONENTS_PNG_SIZE = (1000, 450)  # pixels of components.png


@dataclass
class CompareConfig(ConfigBase):
    """Settings of ``dialogue-rl compare`` (YAML keys = field names; command-line flags override them)."""

    config_label = "compare setting"  # unknown keys: "unknown compare setting(s) [...]"
    config_examples = "the presets compare and compare_tiny"

    model: str = "smollm2-135m"
    """Policy / reference model: smollm2-135m, tiny-random, a hub id or a local path."""
    agents: list = field(default_factory=lambda: list(DEFAULT_AGENTS))
    """Agents to compare: built-in names, ``name=module:attr`` or ``name=path.zip`` specs. An SB3 ``.zip`` is a
    pickle: loading it runs code from the file, so only name ``.zip`` agents you trust (a warning is printed)."""
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    """Training seeds: each trainable agent is trained once per seed, and every agent evaluated once per seed."""
    budget_steps: int = 16384
    """Env steps of training per trainable agent and seed (PPO: rounded up to whole iterations of
    num_envs * max_new_tokens steps; SB3 PPO/A2C: SB3 completes its last rollout)."""
    budget_seconds: float | None = None
    """Optional wall-time cap of each training run (stops whichever of the two budgets runs out first)."""
    dataset: str = "customer_service"
    """Dialogue dataset; training on its train split."""
    eval_split: str = "test"
    """Held-out split the agents are evaluated on."""
    eval_limit: int | None = None
    """Evaluate on an evenly spaced subset of this many dialogues of eval_split (None = all)."""
    eval_seed_offset: int = 10_000
    """Evaluation seed of the agents of training seed s: eval_seed_offset + s (must not be a training seed)."""
    eval_batch_size: int = 25
    """Dialogues evaluated at once (batched envs)."""
    reward: Any = None
    """Reward spec shared by all agents (None = the seed's coherence + sentiment + consistency, gated by ethics)."""
    k: int = 50
    """Actions of DialogueTopK-v0 (the reference's k most likely tokens)."""
    max_new_tokens: int = 48
    """Longest reply, in tokens."""
    max_context_tokens: int = 256
    """Longest context, in tokens."""
    temperature: float = 0.7
    """Sampling temperature of the LM agents (ppo trains and is evaluated at it; reference samples at it)."""
    deterministic: bool = True
    """Evaluate predict-agents (SB3, yours) with predict(..., deterministic=True), SB3's evaluation convention."""
    device: str = "cpu"
    """Where the models, envs and rewards run."""
    turns: int = 1
    """Agent replies per conversation (the multi-turn setting: > 1; ppo then trains over whole conversations)."""
    user_simulator: str = "replay"
    """Who writes the customer's turns when turns > 1: replay (the dataset's) or lm (a local LM customer that ends
    each conversation resolved or gave up; its resolution is the outcome reward)."""
    simulator_model: str = "smollm2-135m"
    """The LM customer's model when user_simulator = lm."""
    best_of_n: int = 4
    """Candidates per reply of the best-of-n agent (sampled at the temperature, the reward picks one)."""
    ppo_config: str | None = None
    """PPOConfig YAML for the ppo agent (None: configs/tiny.yaml for tiny-random, else configs/demo.yaml)."""
    ppo: dict = field(default_factory=dict)
    """Overrides of PPOConfig fields for the ppo agent (applied last)."""
    sb3: dict = field(default_factory=dict)
    """Per-algorithm SB3 hyperparameter overrides, e.g. {ppo: {n_steps: 32}, dqn: {buffer_size: 5000}} (see
    agents.sb3.DEFAULT_HYPERPARAMS; sb3-ppo-tokens uses the ppo entry)."""

    def validate(self) -> CompareConfig:
        if not self.agents:
            raise ValueError("agents is empty: name at least one agent (see dialogue-rl compare --help for the built-ins)")
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one training seed, e.g. --seeds 0")
        self.seeds = [int(s) for s in self.seeds]
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds} repeat a seed")
        clash = set(self.seeds) & {self.eval_seed_offset + s for s in self.seeds}
        if clash:
            raise ValueError(f"evaluation seeds (eval_seed_offset + seed) {sorted(clash)} are also training seeds; "
                             f"choose eval_seed_offset larger than the largest training seed")
        if self.budget_steps < 1:
            raise ValueError(f"budget_steps={self.budget_steps} must be at least 1")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ValueError(f"eval_limit={self.eval_limit} must be at least 1 (or None for the whole split)")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size={self.eval_batch_size} must be at least 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0")
        if self.turns < 1 or self.best_of_n < 1:
            raise ValueError(f"turns={self.turns} and best_of_n={self.best_of_n} must be at least 1")
        if self.user_simulator not in ("replay", "lm"):
            raise ValueError(f"user_simulator={self.user_simulator!r}: use replay or lm")
        unknown = set(self.sb3) - {"ppo", "a2c", "dqn"}
        if unknown:
            raise ValueError(f"sb3: unknown algorithm(s) {sorted(unknown)}; use ppo, a2c, dqn")
        return self

    def env_kwargs(self, split: str) -> dict:
        return {"model": self.model, "dataset": self.dataset, "split": split, "reward": self.reward,
                "max_new_tokens": self.max_new_tokens, "max_context_tokens": self.max_context_tokens,
                "device": self.device, "turns": self.turns, "user_simulator": self.user_simulator,
                "simulator_model": self.simulator_model}

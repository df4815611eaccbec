"""PPO configuration: one dataclass, one docstring per field. CleanRL names for the RL knobs, TRL names for the
language-model ones. Load from YAML with ``PPOConfig.from_yaml(path, **overrides)``.

``--resume`` continues a run only with the config it was started with, except for the fields in
:data:`RESUME_CHANGEABLE` (their docs say "may change on --resume"): the length and budget of the run, logging,
checkpointing, the periodic evaluations, the device and the free-form notes. Every other field changes what the run
learns, the shapes of its saved state, or what the saved "before" evaluation is compared with, so a resume that
changes one is refused (``agents.ppo.checkpoint.check_resume_config``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rewards.utils import ConfigBase, parse_overrides

__all__ = ["RESUME_CHANGEABLE", "PPOConfig", "parse_overrides"]

RESUME_CHANGEABLE = frozenset({
    "total_iterations", "time_limit_s", "device", "eval_every", "eval_split", "eval_batch_size", "checkpoint_every",
    "logger", "wandb_project", "examples", "extra", "decode", "judges",
})
"""PPOConfig fields a ``--resume`` may change; any other changed field is refused."""


@dataclass
class PPOConfig(ConfigBase):
    config_label = "PPO config field"  # unknown keys: "unknown PPO config field(s) [...]"

    # ---------------------------------------------------------------------------------------- task and model
    model: str = "smollm2-135m"
    """Policy to start from (and the frozen reference): smollm2-135m, tiny-random, a hub id or a local path."""
    dataset: str = "customer_service"
    """Dialogue dataset: customer_service, customer_service_zh, medical, education, legal, chatterbot, or a JSONL path
    (its dataset.json picks the reward's language and ethics profile). Training uses its train split."""
    reward: Any = None
    """Reward spec for the env (a name, {name: weight}, or module:attr); None = the seed's default reward."""
    max_new_tokens: int = 48
    """Longest reply, in tokens (the env truncates there)."""
    max_context_tokens: int = 384
    """Longest context, in tokens; longer ones lose their oldest turns."""
    system_prompt: str | None = "auto"
    """The env's system prompt ("auto": the dataset's own, e.g. customer_service's or its dataset.json's)."""
    turns: int = 1
    """Agent replies per episode. With turns > 1 one trajectory is a whole conversation: the user simulator's
    tokens are context (no loss, no KL, no value target), GAE runs over the agent's tokens across turns, each reply's
    reward arrives on its last token and the outcome reward on the episode's last agent token."""
    user_simulator: str = "replay"
    """Who writes the customer's turns when turns > 1: replay (the dataset's) or lm (a local LM customer that ends
    each conversation resolved or gave up; see dialogue_env.simulators)."""
    simulator_model: str = "smollm2-135m"
    """The LM customer's model when user_simulator = lm (tiny-random for tests)."""
    outcome_reward: Any = "auto"
    """Reward spec scored once per conversation on its last reply ("auto": resolution with the LM customer, else
    none; null for none)."""
    seed: int = 0
    """Seeds torch, the env's dialogue draws and the sampler. Same seed -> same run on CPU."""
    device: str = "cpu"
    """cpu or cuda; the env, the models and the reward live there. May change on --resume (the run continues on the
    new device, though not bit for bit as it would have on the old one)."""
    dtype: str = "auto"
    """auto: float32 weights, with bfloat16 autocast on CUDA; autocast: bfloat16 autocast on any device, with the
    frozen weights (trunk, reference head, tied embeddings) stored in bfloat16 and the trained ones in float32 -- on
    a CPU with bfloat16 matrix units (AMX, AVX512-BF16) 1.35x faster per iteration than auto, measured (README,
    "Benchmarks"); checkpoints are written in float32; float32: no autocast; bfloat16: bf16 weights."""

    # --------------------------------------------------------------------------------------------- rollouts
    num_envs: int = 16
    """Parallel dialogues per rollout = replies per PPO iteration (the batched env's num_envs). The global batch:
    under torchrun each of N processes rolls out num_envs / N of them (a multiple of samples_per_context), so the
    same config learns the same thing on any number of processes."""
    samples_per_context: int = 1
    """Replies sampled per dialogue in a rollout: num_envs / samples_per_context distinct dialogues, each encoded
    once (the prefill's KV cache is shared by its samples). num_envs must be a multiple of it."""
    score_baseline: str = "none"
    """none, or group: subtract from each reply's score the mean score of the other samples of the same dialogue
    (leave-one-out, as in RLOO) before GAE. Needs samples_per_context >= 2. Removes the between-dialogue part of the
    reward's variance, which the value head only learns slowly."""
    total_iterations: int = 30
    """PPO iterations (rollout + update). May change on --resume."""
    time_limit_s: float | None = None
    """Wall-clock budget of the whole run, evaluations included: training stops when one more iteration plus the
    final evaluation (timed by the first one) would exceed it. None = no limit. May change on --resume."""
    temperature: float = 0.7
    """Sampling temperature; the policy being optimised is softmax(logits / temperature)."""
    seed_per_reply: bool | None = None
    """Draw each reply's tokens from a generator of its own, seeded by (seed, iteration, row of the global batch),
    so the replies do not depend on how the batch is split over processes: N ranks give the run of one, and a run
    resumes identically on another world size. None: on under torchrun (false is refused there), off in a plain
    process (one generator for the whole batch)."""
    fsdp: bool = False
    """Under torchrun, shard the policy, its value head and the frozen reference over the processes with FSDP2
    (torch.distributed.fsdp.fully_shard, one unit per decoder layer) instead of replicating the trained layers
    with DDP; checkpoints then go through torch.distributed.checkpoint (safetensors shards), each also converted
    to a plain Hugging Face model directory."""
    decode: str = "auto"
    """Rollout decoder (agents.collect.LMActor): auto (static key/value buffers and a CUDA graph per token on CUDA,
    the dynamic KV cache on the CPU), static or dynamic. May change on --resume."""

    # ---------------------------------------------------------------------------------------- optimisation
    learning_rate: float = 1e-5
    """AdamW learning rate."""
    anneal_lr: bool = False
    """Linearly decay the learning rate to 0 over total_iterations."""
    update_epochs: int = 4
    """PPO epochs over each rollout."""
    num_minibatches: int = 2
    """Minibatches per epoch (num_envs must divide evenly)."""
    norm_adv: bool = True
    """Whiten advantages over the batch's real tokens."""
    clip_coef: float = 0.2
    """PPO ratio clip epsilon."""
    clip_vloss: bool = True
    """Clip the value loss around the rollout's values (with clip_coef)."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip."""
    target_kl: float | None = None
    """Stop the epochs of an iteration early when approx_kl (old vs new policy) exceeds this."""
    gamma: float = 1.0
    """Discount over reply tokens."""
    gae_lambda: float = 0.95
    """GAE lambda (advantage_estimator gae)."""
    advantage_estimator: str = "gae"
    """gae: GAE with the value head (the PPO of Ouyang et al. 2022 and TRL's PPOTrainer). returns: no critic; every
    reply token's advantage is its return to go, the (baseline-subtracted) score plus the KL penalties after it,
    A_t = sum_{k>=t} gamma^(k-t) r_k, and the value head is not trained. With score_baseline group this is RLOO
    (Ahmadian et al. 2024, "Back to Basics") with PPO's clipped ratio: every token of a reply gets the full credit of
    its score, where GAE with lambda 0.95 and a value head that explains little gives the first of 48 tokens
    0.95^47 = 9% of it."""

    # ------------------------------------------------------------------------------- LM-specific (TRL names)
    kl_coef: float = 0.05
    """Per-token KL penalty coefficient beta against the frozen reference (initial value if adaptive)."""
    kl_estimator: str = "k1"
    """k1, k2 or k3 (Schulman 2020) for the per-token KL penalty."""
    adaptive_kl: bool = False
    """Adapt kl_coef towards kl_target (Ziegler et al. 2019)."""
    kl_target: float = 6.0
    """Target KL per reply (summed over tokens) for the adaptive controller."""
    kl_horizon: int = 10000
    """Horizon of the adaptive controller, in replies."""
    whiten_rewards: bool = False
    """Whiten per-token rewards (without shifting the mean) before GAE."""
    num_layers_unfrozen: int = 2
    """Train only the top N decoder layers (-1 = all). The frozen trunk is shared with the reference model and
    computed once per rollout, so PPO epochs cost about N / n_layers of a full pass."""
    train_lm_head: bool = False
    """Also train the output embedding (untied from the input embedding)."""
    lora_r: int = 0
    """LoRA rank on the trainable layers (0 = train them in full). Needs peft."""
    lora_alpha: int = 16
    """LoRA alpha."""

    # ------------------------------------------------------------------------------ evaluation and logging
    eval_every: int = 0
    """Evaluate on eval_split every N iterations (0 = only before and after training). May change on --resume."""
    eval_split: str = "validation"
    """Split of the periodic evaluations. May change on --resume."""
    eval_limit: int | None = None
    """Evaluate on the first N dialogues of a split (None = all). Fixed on --resume (the final evaluation must
    match the saved "before" one)."""
    eval_batch_size: int = 25
    """Dialogues generated at once during evaluation. May change on --resume."""
    eval_greedy: bool = False
    """Evaluate with greedy decoding instead of sampling at `temperature`. Fixed on --resume (as eval_limit)."""
    final_split: str = "test"
    """Split of the before/after table. Fixed on --resume (as eval_limit)."""
    checkpoint_every: int = 10
    """Write a checkpoint every N iterations (and always at the end). May change on --resume."""
    logger: str = "tensorboard"
    """tensorboard, wandb or none. May change on --resume."""
    wandb_project: str = "dialogue-rl"
    """Weights & Biases project when logger = wandb. May change on --resume."""
    examples: int = 4
    """Example replies shown before/after. May change on --resume."""
    judges: Any = None
    """Rewards that score every evaluation's replies without being optimised, to see reward hacking: a list of
    reward specs (``[{learned: {path: runs/rm}}, coherence]``, labelled by their name) or ``{label: spec}``; logged
    as eval/judge/<label> and shown in report.md's before/after table (agents.evaluator.make_judges). They never
    touch training, so they may change on --resume."""
    extra: dict = field(default_factory=dict)
    """Free-form notes stored with the run. May change on --resume."""

    # --------------------------------------------------------------------------------------------- derived
    @property
    def minibatch_size(self) -> int:
        return self.num_envs // self.num_minibatches

    def validate(self) -> PPOConfig:
        if self.num_envs < 1 or self.num_minibatches < 1 or self.num_envs % self.num_minibatches:
            raise ValueError(f"num_envs={self.num_envs} must be a positive multiple of num_minibatches="
                             f"{self.num_minibatches}")
        if self.samples_per_context < 1 or self.num_envs % self.samples_per_context:
            raise ValueError(f"num_envs={self.num_envs} must be a positive multiple of samples_per_context="
                             f"{self.samples_per_context}")
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            raise ValueError(f"system_prompt={self.system_prompt!r} must be a string, null (no system message) or "
                             "auto (the dataset's own)")
        if self.judges:  # a malformed judge is a ConfigError now, not after the model has loaded
            from agents.evaluator import judge_specs

            judge_specs(self.judges)
        if self.advantage_estimator not in ("gae", "returns"):
            raise ValueError(f"advantage_estimator={self.advantage_estimator!r}: use gae or returns")
        if self.score_baseline not in ("none", "group"):
            raise ValueError(f"score_baseline={self.score_baseline!r}: use none or group")
        if self.score_baseline == "group" and self.samples_per_context < 2:
            raise ValueError("score_baseline=group needs samples_per_context >= 2 (the other samples of a dialogue "
                             "are its baseline)")
        if isinstance(self.turns, bool) or not isinstance(self.turns, int) or self.turns < 1:
            raise ValueError(f"turns={self.turns!r} must be an integer >= 1")
        if self.user_simulator not in ("replay", "lm"):
            raise ValueError(f"user_simulator={self.user_simulator!r}: use replay or lm")
        if self.kl_estimator not in ("k1", "k2", "k3"):
            raise ValueError(f"kl_estimator={self.kl_estimator!r}: use k1, k2 or k3")
        if self.logger not in ("tensorboard", "wandb", "none"):
            raise ValueError(f"logger={self.logger!r}: use tensorboard, wandb or none")
        if self.decode not in ("auto", "static", "dynamic"):
            raise ValueError(f"decode={self.decode!r}: use auto, static or dynamic")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0")
        at_least = {"total_iterations": 1, "max_new_tokens": 1, "max_context_tokens": 8, "update_epochs": 1,
                    "kl_horizon": 1, "eval_every": 0, "eval_batch_size": 1, "checkpoint_every": 0, "examples": 0,
                    "lora_r": 0, "lora_alpha": 1}
        for name, low in at_least.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} must be an integer >= {low}")
        if self.eval_limit is not None and (isinstance(self.eval_limit, bool) or not isinstance(self.eval_limit, int)
                                            or self.eval_limit < 1):
            raise ValueError(f"eval_limit={self.eval_limit!r} must be an integer >= 1, or null for the whole split")
        if isinstance(self.num_layers_unfrozen, bool) or not isinstance(self.num_layers_unfrozen, int) \
                or self.num_layers_unfrozen < -1:
            raise ValueError(f"num_layers_unfrozen={self.num_layers_unfrozen!r} must be -1 (all layers) or >= 0")
        positive = ("learning_rate", "clip_coef", "max_grad_norm", "kl_target")
        non_negative = ("vf_coef", "ent_coef", "kl_coef")
        for name in positive + non_negative:
            value = getattr(self, name)
            low_ok = value > 0 if name in positive else value >= 0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not low_ok:
                raise ValueError(f"{name}={value!r} must be a number {'> 0' if name in positive else '>= 0'}")
        for name in ("gamma", "gae_lambda"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name}={value!r} must be in [0, 1]")
        for name in ("target_kl", "time_limit_s"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{name}={value!r} must be a number > 0, or null for none")
        for name in ("seed_per_reply",):
            if getattr(self, name) not in (None, True, False):
                raise ValueError(f"{name}={getattr(self, name)!r} must be true, false or null (automatic)")
        if not isinstance(self.fsdp, bool):
            raise ValueError(f"fsdp={self.fsdp!r} must be true or false")
        if self.fsdp and self.lora_r > 0:
            raise ValueError("fsdp: true with lora_r > 0 is not supported: LoRA already holds the model once and "
                             "trains only its adapters (use DDP: fsdp: false)")
        if self.dtype not in ("auto", "autocast", "float32", "bfloat16", "fp32", "bf16", "float16", "fp16"):
            raise ValueError(f"dtype={self.dtype!r}: use auto, autocast, float32 or bfloat16")
        if self.dtype == "autocast" and (self.lora_r > 0 or self.fsdp):
            raise ValueError(f"dtype=autocast with {'lora_r > 0' if self.lora_r > 0 else 'fsdp: true'} is not "
                             "supported (its frozen weights are kept in bfloat16); use dtype auto")
        if self.eval_split not in ("train", "validation", "test"):
            raise ValueError(f"eval_split={self.eval_split!r}: use train, validation or test")
        if self.final_split not in ("train", "validation", "test", "", None):
            raise ValueError(f"final_split={self.final_split!r}: use train, validation, test, or '' / null (no "
                             f"before/after evaluation)")
        return self

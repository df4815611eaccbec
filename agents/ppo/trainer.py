"""Token-level PPO for a language model on the batched Dialogue-v0 env. The loop reads top to bottom.

One iteration:
1. Rollout: ``num_envs`` dialogues; the policy writes each reply token by token through the vector env with the one
   collector (``agents.collect``, KV cache reused between tokens); the env scores every finished reply. The trunk's
   hidden states are kept.
2. From those states, the trainable top layers give the old log-probs and values, the frozen reference's top
   layers give the reference log-probs (no trunk recomputation).
3. Per-token rewards r_t = -beta * KL_t, plus the env's score on the reply's last token; GAE advantages.
4. ``update_epochs`` epochs of minibatch PPO on the clipped surrogate + clipped value loss - entropy bonus.
5. Log, adapt beta, checkpoint, evaluate.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import dialogue_env  # noqa: F401  (registers the envs)
from agents.collect import Rollout, collect
from agents.evaluate import format_table, write_outputs
from agents.evaluator import (
    apply_ethics,
    apply_judges,
    by_cut_off,
    env_ethics,
    evaluate_actor,
    make_judges,
    paired_gain,
    summarize,
)
from agents.ppo import distributed as ddp
from agents.ppo import functional as ppo_f
from agents.ppo.checkpoint import (
    check_resume_config,
    check_run_folder,
    find_resume_checkpoint,
    latest_checkpoint,
    remove_stale_temporaries,
    restore_state,
    save_checkpoint,
)
from agents.ppo.config import PPOConfig
from agents.ppo.kl import AdaptiveKLController, FixedKLController
from agents.ppo.multiturn import conversation_trunk, multiturn_env_kwargs, shaped_rewards, turn_scalars
from agents.ppo.policy import PolicyWithValue
from dialogue_env.models import check_device, load_policy
from rewards.utils import ConfigError, atomic_write_text

__all__ = ["LengthGroupedSampler", "evaluate_in_training", "latest_checkpoint", "save_checkpoint", "train"]


# ------------------------------------------------------------------------------------------------ helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(cfg: PPOConfig):
    """bfloat16 autocast on CUDA when ``dtype`` is auto, and on any device when it is ``autocast``; a no-op
    elsewhere (precision is decided here only)."""
    import contextlib

    device = torch.device(cfg.device).type
    if cfg.dtype == "autocast" or (cfg.dtype == "auto" and device == "cuda"):
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_has_bf16() -> bool:
    """Does this CPU multiply bfloat16 natively (AMX tiles or AVX512-BF16, e.g. Intel Sapphire Rapids, AMD Zen 4)?"""
    cpu = torch.cpu
    return any(bool(getattr(cpu, probe, lambda: False)()) for probe in ("_is_amx_tile_supported",
                                                                          "_is_avx512_bf16_supported"))


def phase_times(clock: dict, reward_seconds: float) -> dict:
    """``time/generate``, ``time/reward``, ``time/score``, ``time/update``, ``time/other`` (seconds) of one iteration
    from its phase clocks: generate is the rollout less the env's reward calls; other is advantages and
    bookkeeping up to now."""
    now = time.perf_counter()
    return {"time/generate": clock["rollout"] - clock["start"] - reward_seconds, "time/reward": reward_seconds,
            "time/score": clock["score"] - clock["rollout"], "time/update": clock["update"] - clock["advantages"],
            "time/other": (clock["advantages"] - clock["score"]) + (now - clock["update"])}


def make_env(cfg: PPOConfig, num_envs: int, split: str):
    return gym.make_vec("dialogue_env/Dialogue-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        model=cfg.model, dataset=cfg.dataset, split=split, reward=cfg.reward,
                        max_new_tokens=cfg.max_new_tokens, max_context_tokens=cfg.max_context_tokens,
                        system_prompt=cfg.system_prompt, device=cfg.device, return_tensors=True,
                        **multiturn_env_kwargs(cfg))


def response_logprobs(policy: PolicyWithValue, ro: Rollout, temperature: float, with_ref: bool = True):
    """Old log-probs, values and reference log-probs of the rollout's reply tokens, each (B, T)."""
    ids, mask = ro.sequence()
    Lq = ro.query_ids.shape[1]
    with torch.no_grad():
        logits, values = policy.policy_head(ro.trunk_states, mask, keep_from=Lq - 1)  # (B, T, V), (B, T)
        logp = ppo_f.chunked_logprobs(logits, ro.response_ids, temperature)
        ref_logp = None
        if with_ref:
            ref_logits = policy.reference_logits(ro.trunk_states, mask, keep_from=Lq - 1)
            ref_logp = ppo_f.chunked_logprobs(ref_logits, ro.response_ids, temperature)
    return logp, values.float(), ref_logp


def phase_clock(device) -> float:
    """``time.perf_counter()`` after the device's queued work is done (CUDA runs asynchronously), for the per-phase
    times ``time/*`` of each iteration."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def make_optimizer(params, cfg: PPOConfig):
    """AdamW; the fused (one-kernel) implementation on CUDA."""
    fused = {"fused": True} if torch.device(cfg.device).type == "cuda" else {}
    return torch.optim.AdamW(params, lr=cfg.learning_rate, eps=1e-5, **fused)


class LengthGroupedSampler:
    """Dialogue indices for each rollout: every dialogue once per pass, in random order, but batched with
    dialogues of similar context length (windows of ``4 * batch`` sorted by length), so the padded prefill wastes
    little compute on padding. Its state is a numpy Generator, saved in checkpoints."""

    def __init__(self, lengths, batch: int, seed: int, window: int = 4):
        self.lengths = np.asarray(lengths)
        self.batch, self.window = batch, window
        self.rng = np.random.default_rng(seed)
        self.queue: list = []

    def next(self) -> list:
        if not self.queue:
            perm = self.rng.permutation(len(self.lengths))
            if len(perm) < self.batch:  # tiny datasets: sample with replacement
                perm = self.rng.choice(len(self.lengths), self.batch)
            batches = []
            step = self.batch * self.window
            for w in range(0, len(perm) - self.batch + 1, step):
                chunk = perm[w:w + step]
                chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
                batches += [chunk[i:i + self.batch].tolist() for i in range(0, len(chunk) - self.batch + 1,
                                                                             self.batch)]
            self.rng.shuffle(batches)
            self.queue = batches
        return self.queue.pop()

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "queue": [list(b) for b in self.queue]}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.queue = [list(b) for b in state["queue"]]


# ---------------------------------------------------------------------------------------------- evaluation
def evaluate_in_training(policy: PolicyWithValue, cfg: PPOConfig, split: str, seed: int, env=None):
    """Generate one reply per dialogue of ``split`` with the current policy and summarise it (same fields as
    ``dialogue-rl evaluate``). KL and perplexity use the frozen reference heads on the shared trunk states, at
    temperature 1."""
    env = env or make_env(cfg, cfg.eval_batch_size, split)
    dialogues = env.unwrapped.dialogues
    n = len(dialogues) if cfg.eval_limit is None else min(cfg.eval_limit, len(dialogues))
    policy.eval()

    def logprobs(ro):
        with autocast(cfg):
            if ro.trunk_states is None:  # multi-turn: no trunk capture during collection
                ro.trunk_states = conversation_trunk(policy, ro)
            logp, _, ref_logp = response_logprobs(policy, ro, temperature=1.0)
        return logp, ref_logp

    with autocast(cfg):
        rows, _ = evaluate_actor(env, policy.lm, range(n), logprobs, sort_by_length=True,
                                 temperature=cfg.temperature, greedy=cfg.eval_greedy,
                                 generator=torch.Generator().manual_seed(seed),
                                 capture_layer=policy.split if cfg.turns == 1 else None)
    ethics_stats = apply_ethics(rows, ethics=env_ethics(env, cfg.dataset))
    apply_judges(rows, make_judges(cfg.judges))  # rewards not optimised, beside the one that is
    return summarize(rows, ethics_stats, policy=cfg.model, dataset=cfg.dataset, split=split, seed=seed), rows


# ---------------------------------------------------------------------------------------------- logging
class Logger:
    """TensorBoard (default) or Weights & Biases scalars under charts/, losses/, rewards/<name>, eval/."""

    def __init__(self, cfg: PPOConfig, out: Path):
        self.kind = cfg.logger
        self.tb = self.wandb = None
        if self.kind == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        elif self.kind == "wandb":
            try:
                import wandb
            except ImportError as err:
                raise ImportError("logger: wandb needs the wandb package: pip install 'dialogue-rl[wandb]'") from err
            self.wandb = wandb.init(project=cfg.wandb_project, config=cfg.to_dict(), dir=str(out))

    def log(self, scalars: dict, step: int) -> None:
        scalars = {k: float(v) for k, v in scalars.items() if v is not None and np.isfinite(float(v))}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _eval_scalars(summary: dict, prefix: str = "eval") -> dict:
    keys = ("reward", "reward_std", "kl", "perplexity", "distinct_1", "distinct_2", "mean_length",
            "ethics_violation_rate")
    out = {f"{prefix}/{k}": summary[k] for k in keys}
    out.update({f"{prefix}/rewards/{k}": v for k, v in summary["components"].items()})
    out.update({f"{prefix}/{k}": summary[k] for k in ("turn_reward", "resolution_rate", "cut_off_rate")
                if k in summary})
    out.update({f"{prefix}/judge/{k}": v["mean"] for k, v in summary.get("judges", {}).items()})
    return out


# ------------------------------------------------------------------------------------------------- train
def train(cfg: PPOConfig, out, resume: bool = False, progress_bar: bool = True, log=print) -> dict:
    """Run PPO; return a dict with the before/after summaries (``None`` entries when an evaluation was skipped).

    ``resume``: continue from the newest readable checkpoint in ``out`` (a damaged newest one is logged and the
    previous one used; an old pickle-format one is refused), only if ``cfg`` differs from the run's saved config in
    nothing but ``agents.ppo.config.RESUME_CHANGEABLE`` fields; otherwise a ``ResumeError`` lists the changed fields
    and nothing in ``out`` is touched. Leftovers of an interrupted checkpoint write are removed first.

    Under ``torchrun`` every process runs this function on its shard of the batch (``agents.ppo.distributed``);
    rank 0 logs, evaluates and writes the checkpoints (the summaries are returned on rank 0 only)."""
    cfg.validate()
    check_device(cfg.device)  # a CUDA device on a CPU-only machine: one message, not torch's assertion
    check_run_folder(Path(out), resume)  # every rank, before the rendezvous: nobody writes before all have checked
    dist, device = ddp.setup(cfg.device)
    try:
        ddp.check_world_size(cfg, dist.world)
        if cfg.fsdp and not dist.launched:
            raise ConfigError("fsdp: true shards the policy over processes: start the run with torchrun "
                              "(torchrun --nproc_per_node N -m agents.ppo.train ...), or set fsdp: false")
        if device != cfg.device:  # cuda -> cuda:LOCAL_RANK
            cfg = PPOConfig.from_dict({**cfg.to_dict(), "device": device})
        return _train(cfg, Path(out), resume, progress_bar and dist.main, log if dist.main else _quiet, dist)
    finally:
        ddp.teardown(dist)


def _quiet(*args, **kwargs) -> None:
    """The log of ranks other than 0."""


def _train(cfg: PPOConfig, out: Path, resume: bool, progress_bar: bool, log, dist: ddp.Dist) -> dict:
    from tqdm.auto import tqdm

    t_start = time.time()
    if dist.main and out.is_dir():  # the folder itself is made when the run first writes, after the models load
        remove_stale_temporaries(out, log)
        for staging in (out / "checkpoints").glob(".sharded-iter-*"):  # FSDP2 shards of a killed checkpoint write
            shutil.rmtree(staging, ignore_errors=True)
    dist.barrier()
    found = find_resume_checkpoint(out, log) if resume else None
    if resume and found is None:
        log(f"[dialogue-rl] --resume: no checkpoint under {out}/checkpoints, starting from scratch")
    if found is not None:  # before anything is loaded or written: a refused config leaves the run folder as it was
        check_resume_config(found[1]["config"], cfg, found[0], log)
    seed_everything(cfg.seed)

    # ---- models: the policy (trainable top layers + value head) and the frozen reference heads
    lm, tokenizer = load_policy(cfg.model, device=cfg.device, dtype="float32" if cfg.dtype in ("auto", "autocast") else cfg.dtype)
    policy = PolicyWithValue(lm, num_layers_unfrozen=cfg.num_layers_unfrozen, train_lm_head=cfg.train_lm_head,
                             lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha)
    if cfg.advantage_estimator != "gae":  # no critic to train
        policy.value_head.requires_grad_(False)
    if cfg.dtype == "autocast":
        policy.store_frozen_in(torch.bfloat16)
        if torch.device(cfg.device).type == "cpu" and not cpu_has_bf16():
            log("[dialogue-rl] dtype autocast: this CPU has no bfloat16 matrix instructions (AMX or AVX512-BF16), so "
                "bfloat16 is emulated and slower than float32; use dtype auto")
    if cfg.fsdp:
        ddp.shard_policy(dist, policy)  # before the optimizer: it holds the sharded parameters
    optimizer = make_optimizer(policy.trainable_parameters(), cfg)
    kl_ctl = (AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon) if cfg.adaptive_kl
              else FixedKLController(cfg.kl_coef))
    rows = ddp.shard_rows(dist, cfg.num_envs)  # this process's rows of the global batch (all of them in one)
    envs = make_env(cfg, rows.stop - rows.start, "train")
    envs.reset(seed=cfg.seed + rows.start)  # sub-env i of the global batch is seeded seed + i, as in one process
    # the same on every rank: dialogue draws, minibatch order; sampling (one process) on the device
    gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    n_samples = cfg.samples_per_context
    sampler = LengthGroupedSampler(envs.unwrapped.context_lengths, cfg.num_envs // n_samples, cfg.seed)
    row_sampling = dist.launched if cfg.seed_per_reply is None else cfg.seed_per_reply
    progress = {"iteration": 0, "episodes": 0, "env_steps": 0, "train_seconds": 0.0}
    summaries = {}
    if found is not None:
        ckpt, _, state = found
        progress = restore_state(state, policy, optimizer, kl_ctl, gen, sampler, ckpt)
        before_path = out / "eval_before.json"
        if before_path.is_file():
            summaries["before"] = json.loads(before_path.read_text())
        log(f"[dialogue-rl] resumed from {ckpt} at iteration {progress['iteration']}")
    top = ddp.wrap_for_training(dist, policy)  # policy.policy_head, or its DDP-wrapped trained part
    if dist.main:  # the models, data and reward are built: a mistake in them has left no folder behind
        out.mkdir(parents=True, exist_ok=True)
    logger = Logger(cfg if dist.main else PPOConfig.from_dict({**cfg.to_dict(), "logger": "none"}), out)
    if dist.main:
        atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2, default=str))

    # ---- evaluation of the untrained policy on the final split (the "before" column)
    final_env = None
    rows_before = None
    eval_seconds = 0.0  # how long the final evaluation will take, estimated by the first one
    if "before" not in summaries and cfg.final_split:
        with ddp.gathered(policy):  # FSDP2: every rank gathers the weights, rank 0 evaluates
            if dist.main:
                final_env = make_env(cfg, cfg.eval_batch_size, cfg.final_split)
                t0 = time.time()
                summaries["before"], rows_before = evaluate_in_training(policy, cfg, cfg.final_split,
                                                                        seed=cfg.seed + 10_000, env=final_env)
    if "before" in summaries and rows_before is not None:
        eval_seconds = time.time() - t0
        write_outputs(summaries["before"], rows_before, out / "eval_before.json")
        log(f"[dialogue-rl] before training: reward {summaries['before']['reward']:.3f} on {cfg.final_split} "
            f"({time.time() - t0:.0f} s)")
        logger.log(_eval_scalars(summaries["before"], "final"), 0)
    dist.barrier()

    # ---- the loop
    start_iter = progress["iteration"]
    bar = tqdm(range(start_iter, cfg.total_iterations), initial=start_iter, total=cfg.total_iterations,
               disable=not progress_bar, desc="PPO", dynamic_ncols=True)
    B, T_mb = cfg.num_envs, cfg.minibatch_size
    history, evals = [], []
    for iteration in bar:
        t_iter = time.time()
        clock = {"start": phase_clock(cfg.device)}
        if cfg.anneal_lr:
            for group in optimizer.param_groups:
                group["lr"] = cfg.learning_rate * (1.0 - iteration / cfg.total_iterations)

        with autocast(cfg):  # the rollout and its scoring; each update minibatch has a block of its own (step 4)
            # 1. rollout through the batched env
            policy.eval()
            sampling = ddp.RowSampler(cfg.seed, iteration, range(rows.start, rows.stop)) if row_sampling else gen
            with ddp.gathered(policy):  # FSDP2: whole weights on every rank while it writes and scores its rows
                ro = collect(envs, policy.lm, temperature=cfg.temperature, generator=sampling, decode=cfg.decode,
                             capture_layer=policy.split if cfg.turns == 1 else None,
                             dialogue_indices=np.repeat(sampler.next(), n_samples)[rows])  # groups of samples
                if ro.trunk_states is None:  # turns > 1: one trajectory = the whole conversation (ppo/multiturn.py)
                    ro.trunk_states = conversation_trunk(policy, ro)
                t_rollout = time.time() - t_iter
                clock["rollout"] = phase_clock(cfg.device)
                # 2. old log-probs, values, reference log-probs from the shared trunk states
                old_logp, old_values, ref_logp = response_logprobs(policy, ro, cfg.temperature)
                clock["score"] = phase_clock(cfg.device)
        ids, seq_mask = ro.sequence()
        Lq = ro.query_ids.shape[1]
        mask = ro.response_mask.bool()  # (B, T)

        # 3. rewards and advantages. r_t = -beta * KL_t (+ score on the last token); GAE:
        #    delta_t = r_t + gamma V_{t+1} - V_t,  A_t = delta_t + gamma lambda A_{t+1},  R_t = A_t + V_t
        kl = ppo_f.kl_estimate(old_logp, ref_logp, cfg.kl_estimator, mask=mask)  # (B, T)
        scores = torch.as_tensor(ro.scores, dtype=torch.float32, device=old_logp.device)  # (B,)
        if cfg.score_baseline == "group":  # s_i - mean of the other samples of the same dialogue
            scores = ppo_f.leave_one_out_baseline(scores, n_samples)
        token_r = shaped_rewards(ro, scores, kl, mask, kl_ctl.value)  # (B, T), per-turn scores if turns > 1
        if cfg.whiten_rewards:  # statistics of the global batch (all ranks')
            token_r = ddp.whiten(dist, token_r, mask, shift_mean=False)
        critic = cfg.advantage_estimator == "gae"
        if critic:
            advantages, returns = ppo_f.gae(token_r, old_values, mask, cfg.gamma, cfg.gae_lambda)
        else:  # no critic: A_t = R_t = sum_{k>=t} gamma^(k-t) r_k, the return to go (GAE with V = 0 and lambda = 1)
            advantages, returns = ppo_f.gae(token_r, torch.zeros_like(old_values), mask, cfg.gamma, 1.0)
        if cfg.norm_adv:
            advantages = ddp.whiten(dist, advantages, mask)
        lengths = dist.gather(ro.lengths.cpu())  # (B,) reply tokens of every row of the global batch

        # 4. PPO epochs over minibatches of replies; only the top layers run
        clock["advantages"] = phase_clock(cfg.device)
        policy.train()
        stats = {"pg_loss": [], "v_loss": [], "entropy": [], "approx_kl": [], "clipfrac": [], "vf_clipfrac": []}
        stop = False
        for _epoch in range(cfg.update_epochs):
            order = torch.randperm(B, generator=gen, device=gen.device).cpu()
            for start in range(0, B, T_mb):
                # this rank's rows of the global minibatch; weight: its share of the minibatch's tokens
                mb, weight, share = ddp.minibatch(dist, order[start:start + T_mb], lengths, B)
                # An autocast block of its own: autocast keeps its bfloat16 copy of a trained weight until the
                # block ends, so one block around the epochs would run every minibatch on the rollout's weights.
                with autocast(cfg):
                    logits, values = top(ro.trunk_states[mb], seq_mask[mb], keep_from=Lq - 1)
                    logp = ppo_f.chunked_logprobs(logits, ro.response_ids[mb], cfg.temperature)  # (b, T)
                    if cfg.ent_coef:  # in the loss: the plain float32 entropy, with its gradient
                        entropy = ppo_f.masked_mean(ppo_f.entropy_from_logits(logits.float() / cfg.temperature),
                                                    mask[mb])
                    else:  # logged only
                        entropy = ppo_f.masked_mean(ppo_f.chunked_entropy(logits, cfg.temperature), mask[mb])
                    pg_loss, pstats = ppo_f.policy_loss(logp, old_logp[mb], advantages[mb], mask[mb],
                                                        cfg.clip_coef)
                    loss = pg_loss - cfg.ent_coef * entropy
                    if critic:
                        v_loss, vstats = ppo_f.value_loss(values.float(), old_values[mb], returns[mb], mask[mb],
                                                          cfg.clip_coef if cfg.clip_vloss else None)
                        loss = loss + cfg.vf_coef * v_loss
                    else:  # no critic: the value head is frozen (outside the optimizer, DDP and checkpoints)
                        v_loss, vstats = torch.zeros(()), {"vf_clipfrac": torch.zeros(())}
                    if weight != 1.0:  # DDP averages over ranks: world * n_local / n makes it the global mean
                        loss = loss * weight
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), cfg.max_grad_norm)
                optimizer.step()
                values_mb = [pg_loss, v_loss, entropy, pstats["approx_kl"], pstats["clipfrac"],
                             vstats["vf_clipfrac"]]
                values_mb = [float(v.detach()) for v in values_mb]
                if dist.world > 1:  # minibatch statistics over every rank's rows (token-weighted)
                    values_mb = dist.sum([share * v for v in values_mb]).tolist()
                for key, value in zip(stats, values_mb):
                    stats[key].append(value)
                if cfg.target_kl is not None and stats["approx_kl"][-1] > cfg.target_kl:
                    stop = True
                    break
            if stop:
                break


        # 5. bookkeeping: KL controller, logs, progress, checkpoints, evaluation
        clock["update"] = phase_clock(cfg.device)
        totals = _global_totals(dist, ro, ppo_f.masked_sum(kl, mask, dim=1))
        kl_per_reply = totals["kl"]
        kl_ctl.update(kl_per_reply, B)
        progress["iteration"] = iteration + 1
        progress["episodes"] += B
        progress["env_steps"] += totals["env_steps"]
        dt = time.time() - t_iter
        progress["train_seconds"] += dt
        scalars = {
            "charts/episodes": progress["episodes"], "charts/env_steps": progress["env_steps"],
            "charts/learning_rate": optimizer.param_groups[0]["lr"], "charts/kl_coef": kl_ctl.value,
            "charts/iteration_seconds": dt, "charts/rollout_seconds": t_rollout,
            "charts/env_steps_per_second": totals["env_steps"] / max(t_rollout, 1e-9),
            "charts/mean_reply_tokens": totals["reply_tokens"],
            **({"charts/cut_off_rate": totals["cut_off"]} if ro.single_turn else {}),
            "rewards/total": totals["reward"], "objective/kl": kl_per_reply,
            "objective/rlhf_reward": totals["reward"] - kl_ctl.value * kl_per_reply,
            **({"losses/explained_variance": ddp.explained_variance(dist, old_values, returns, mask)} if critic else {}),
            **phase_times(clock, ro.stats.get("reward_seconds", 0.0)),
        }
        scalars.update({f"rewards/{k}": v for k, v in totals["components"].items()})
        scalars.update(turn_scalars(ro))  # turns > 1: per-turn and outcome means, resolution rate (this rank's)
        scalars.update({f"losses/{k}": float(np.mean(v)) for k, v in stats.items() if v})
        logger.log(scalars, progress["episodes"])
        history.append(scalars)
        bar.set_postfix(reward=f"{totals['reward']:.3f}", kl=f"{kl_per_reply:.2f}")
        last = iteration + 1 == cfg.total_iterations
        # Budget: stop if one more iteration and the final evaluation would not fit in time_limit_s.
        over_time = dist.any(cfg.time_limit_s is not None  # every rank stops when one runs out of time
                             and time.time() - t_start + dt + eval_seconds > cfg.time_limit_s)
        if (cfg.checkpoint_every and (iteration + 1) % cfg.checkpoint_every == 0) or last or over_time:
            _save(dist, out, iteration + 1, cfg, policy, tokenizer, optimizer, kl_ctl, gen, sampler, progress)
        if cfg.eval_every and (iteration + 1) % cfg.eval_every == 0 and not last:
            with ddp.gathered(policy):
                if dist.main:
                    s, _ = evaluate_in_training(policy, cfg, cfg.eval_split, seed=cfg.seed + 20_000)
                    logger.log(_eval_scalars(s), progress["episodes"])
                    evals.append({"iteration": iteration + 1, **s})
            dist.barrier()
        if over_time:
            log(f"\n[dialogue-rl] stopping after {iteration + 1} iterations to finish within time_limit_s = "
                f"{cfg.time_limit_s:.0f} s")
            break
    bar.close()

    # ---- the "after" column, the table and examples
    if cfg.final_split:
        with ddp.gathered(policy):
            if dist.main:
                final_env = final_env or make_env(cfg, cfg.eval_batch_size, cfg.final_split)
                summaries["after"], rows_after = evaluate_in_training(policy, cfg, cfg.final_split,
                                                                      seed=cfg.seed + 10_000, env=final_env)
    if cfg.final_split and dist.main:
        write_outputs(summaries["after"], rows_after, out / "eval_after.json")
        logger.log(_eval_scalars(summaries["after"], "final"), progress["episodes"])
        if summaries.get("before") and rows_before is None:  # resumed: the "before" rows are on disk
            rows_before = _read_jsonl(out / "eval_before.jsonl")
        report = _report(cfg, summaries, rows_before or [], rows_after, progress)
        atomic_write_text(out / "report.md", report)
        log(report)
    dist.barrier()
    logger.close()
    return {"summaries": summaries, "progress": progress, "history": history, "evals": evals,
            "checkpoint": str(latest_checkpoint(out))}


def _save(dist: ddp.Dist, out: Path, iteration: int, cfg: PPOConfig, policy, tokenizer, *state) -> None:
    """Rank 0 writes the checkpoint (``save_checkpoint``); with FSDP2 every rank first writes its shards and the
    weights are gathered into a plain model for rank 0. The others wait until it is complete."""
    lm = staging = None
    if policy.sharded:
        staging = out / "checkpoints" / f".sharded-iter-{iteration:06d}"
        if dist.main:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        dist.barrier()
        ddp.save_sharded(staging, policy, state[0])
        lm = ddp.full_lm(dist, policy)
    if dist.main:
        save_checkpoint(out, iteration, cfg, policy, tokenizer, *state, lm=lm, sharded_dir=staging)
    dist.barrier()


def _global_totals(dist: ddp.Dist, ro: Rollout, kl_per_row: torch.Tensor) -> dict:
    """Means over the global batch of the rollout's reward, components, reply length and per-reply KL; env steps
    summed over ranks (one all-reduce)."""
    names = sorted(ro.components)
    local = [float(ro.scores.sum()), float(kl_per_row.sum()), float(ro.lengths.sum()), float(len(ro.scores)),
             float(ro.stats["env_steps"]), float(np.sum(~np.asarray(ro.terminated, dtype=bool)))]
    local += [float(np.sum(ro.components[k])) for k in names]
    t = dist.sum(local).tolist()
    n = t[3]
    return {"reward": t[0] / n, "kl": t[1] / n, "reply_tokens": t[2] / n, "env_steps": int(t[4]),
            "cut_off": t[5] / n, "components": {k: v / n for k, v in zip(names, t[6:])}}


def _report(cfg: PPOConfig, summaries: dict, rows_before: list, rows_after: list, progress: dict) -> str:
    before, after = summaries.get("before"), summaries["after"]
    lines = [f"# PPO run: {cfg.model} on {cfg.dataset} ({cfg.final_split} split)", "",
             f"{progress['iteration']} iterations, {progress['episodes']} episodes, "
             f"{progress['env_steps']} env steps, {progress['train_seconds']:.0f} s of training", ""]
    table = {"before": before, "after": after} if before else {"after": after}
    lines.append(format_table(table))
    if before:
        gain = (after["reward"] - before["reward"]) / max(before["reward_std"], 1e-9)
        ppl = after["perplexity"] / before["perplexity"] - 1
        d2 = after["distinct_2"] / max(before["distinct_2"], 1e-9)
        paired = paired_gain(rows_before, rows_after)
        ci = f" ± {paired[1]:.2f} (95% CI, paired over the {len(rows_after)} dialogues)" if paired else ""
        lines += ["", f"reward gain: {gain:+.2f}{ci} standard deviations of the untrained policy's per-dialogue "
                      f"reward; perplexity under the reference {100 * ppl:+.1f}%; distinct-2 ratio {d2:.2f}"]
        parts = [(k, paired_gain(rows_before, rows_after, component=k)) for k in before.get("components", {})]
        parts = [f"{k} {g[0]:+.2f} ± {g[1]:.2f}" for k, g in parts if g is not None]
        if parts and len(before.get("components", {})) > 1:
            lines.append("each part of the reward (ungated, in standard deviations of its untrained value): "
                         + ", ".join(parts))
        for k, j in before.get("judges", {}).items():
            if k in after.get("judges", {}):
                paired = paired_gain(rows_before, rows_after, k)
                ci = f" ± {paired[1]:.2f}" if paired else ""
                jgain = (after["judges"][k]["mean"] - j["mean"]) / max(j["std"], 1e-9)
                lines.append(f"judge {k} (not optimised): {jgain:+.2f}{ci} standard deviations of the untrained "
                             "policy's")
        for label, judge in [("reward", None)] + [(f"judge {k}", k) for k in after.get("judges", {})]:
            split = [by_cut_off(rows, judge) for rows in (rows_before, rows_after)]
            if all(split):
                cells = ["; ".join(f"{name.replace('_', ' ')} {m:.3f} ({n})" for name, (n, m) in side.items())
                         for side in split]
                lines.append(f"{label} of finished / cut-off replies (mean, count): before {cells[0]}; "
                             f"after {cells[1]}")
    lines += ["", "## Example replies", ""]
    for i in range(min(cfg.examples, len(rows_after))):
        ctx = rows_after[i]["context"][-1]["content"]
        lines.append(f"**customer:** {ctx}")
        if rows_before:
            lines.append(f"- before ({rows_before[i]['reward']:.2f}): {rows_before[i]['reply']}")
        lines.append(f"- after ({rows_after[i]['reward']:.2f}): {rows_after[i]['reply']}")
        lines.append("")
    return "\n".join(lines)


def _read_jsonl(path: Path) -> list:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]

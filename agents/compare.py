"""Compare agents on the same dialogue MDP, reward and budget: ``dialogue-rl compare``.

Every agent faces the same task: write the support agent's reply, token by token, to customer-service dialogues,
scored by the same reward module. Each trainable agent gets the same budget of env steps (``budget_steps``, and
optionally ``budget_seconds`` of wall time) on the train split, once per training seed; then every agent writes one
reply to each of the same held-out dialogues (the test split, or an evenly spaced subset of ``eval_limit``), with
evaluation seeds ``eval_seed_offset + seed`` that are checked to be disjoint from the training seeds.

Built-in agents:

======================  ============================================================================================
``ppo``                 our token-level PPO (``agents/ppo``) on ``Dialogue-v0``, full vocabulary, KL-shaped towards
                        the reference; evaluated by sampling at ``temperature``.
``sb3-ppo``/``-a2c``    Stable-Baselines3 PPO, A2C, DQN (``agents/sb3``) on ``DialogueTopK-v0`` + ``TopKFeatures``
``sb3-dqn``             (k actions = the reference's k most likely tokens), ``MlpPolicy``; saved as ``.zip``.
``sb3-ppo-tokens``      SB3 PPO with ``MultiInputPolicy`` on ``Dialogue-v0`` itself (token ids in, Discrete(V) out).
``reference``           the reference LM, zero-shot, sampling at ``temperature`` (the PPO agent's starting point).
``reference-greedy``    the reference LM, greedy.
``random``              uniform over the k actions of ``DialogueTopK-v0``.
======================  ============================================================================================

Your own agent: any object with SB3's ``predict(observation, state=None, episode_start=None, deterministic=False)``
(an SB3 model, or your class), passed as ``compare(agents={"mine": obj, "ppo": "ppo", ...})`` or on the command line
as ``--agents ppo,mine=my_package.my_module:my_agent`` (an object, or a class / factory called with no arguments)
or ``mine=path/to/model.zip`` (an SB3 model saved by ``agents.sb3``). It is evaluated as given (not trained). It
reads ``TopKFeatures`` vectors unless it says otherwise with ``observation_kind = "topk"`` (the TopK dict) or
``"tokens"`` (Dialogue-v0); an ``observation_space`` attribute (SB3 models have one) is used the same way and
checked against the env's. ``predict`` receives batches (the leading axis is the env), as with an SB3 ``VecEnv``.

Metrics (per reply, then pooled over seeds and dialogues; the CI is ``1.96 * std / sqrt(n)`` over replies):
reward and each component (unweighted) as the env reports them; ``KL`` = ``sum_t log pi_act(a_t|s_t) - log
pi_ref(a_t|s_t)`` over the reply's tokens, where ``pi_act`` is the distribution the agent actually sampled from
(temperature-scaled for LM agents, a point mass (log-prob 0) for greedy / deterministic agents), so it is a Monte
Carlo estimate of KL(pi_act || pi_ref) per reply; an agent that is stochastic and gives no
``action_log_prob(observation, actions, deterministic)`` gets no KL ("–"). ``perplexity`` of the replies under
the reference; distinct-1/2; the ethics violation rate (the built-in ethics judge). Costs: training env steps and
wall time (and their ratio), evaluation env steps per second.

Outputs in ``out``: ``episodes.jsonl`` (one row per evaluation episode), ``summary.md``, ``summary.csv``,
``summary.json``, ``curves.jsonl`` (training episode rewards against env steps and wall time), ``curves.png``
(reward vs env steps and vs wall time per agent) and ``components.png`` (final reward components per agent), and
the trained agents under ``agents/<name>/seed-<s>/``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewards.utils import BadSpecError, ConfigBase, SpecAttributeError, SpecImportError, atomic_path, import_attr
from rewards.utils import atomic_write_text as _write

BUILTIN_AGENTS = ("ppo", "sb3-ppo", "sb3-a2c", "sb3-dqn", "sb3-ppo-tokens", "reference", "reference-greedy", "random")
DEFAULT_AGENTS = ("ppo", "sb3-ppo", "sb3-a2c", "sb3-dqn", "reference", "reference-greedy", "random")
OBSERVATION_KINDS = ("features", "topk", "tokens")
CURVES_PNG_SIZE = (1200, 450)  # pixels (width, height) of curves.png
COMPONENTS_PNG_SIZE = (1000, 450)  # pixels of components.png
_DPI = 100
_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class CompareConfig(ConfigBase):
    """Settings of ``dialogue-rl compare`` (YAML keys = field names; command-line flags override them)."""

    config_label = "compare setting"  # unknown keys: "unknown compare setting(s) [...]"
    config_examples = "configs/compare.yaml"

    model: str = "smollm2-135m"
    """Policy / reference model: smollm2-135m, tiny-random, a hub id or a local path."""
    agents: list = field(default_factory=lambda: list(DEFAULT_AGENTS))
    """Agents to compare: built-in names, ``name=module:attr`` or ``name=path.zip`` specs."""
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
    ppo_config: str | None = None
    """PPOConfig YAML for the ppo agent (None: configs/tiny.yaml for tiny-random, else configs/demo.yaml)."""
    ppo: dict = field(default_factory=dict)
    """Overrides of PPOConfig fields for the ppo agent (applied last)."""
    sb3: dict = field(default_factory=dict)
    """Per-algorithm SB3 hyperparameter overrides, e.g. {ppo: {n_steps: 32}, dqn: {buffer_size: 5000}} (see
    agents.sb3.DEFAULT_HYPERPARAMS; sb3-ppo-tokens uses the ppo entry)."""

    def validate(self) -> CompareConfig:
        if not self.agents:
            raise ValueError("agents is empty: name at least one agent (built-ins: " + ", ".join(BUILTIN_AGENTS) + ")")
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
        unknown = set(self.sb3) - {"ppo", "a2c", "dqn"}
        if unknown:
            raise ValueError(f"sb3: unknown algorithm(s) {sorted(unknown)}; use ppo, a2c, dqn")
        return self

    def env_kwargs(self, split: str) -> dict:
        return {"model": self.model, "dataset": self.dataset, "split": split, "reward": self.reward,
                "max_new_tokens": self.max_new_tokens, "max_context_tokens": self.max_context_tokens,
                "device": self.device}


# ------------------------------------------------------------------------------------------------------ agents
@dataclass
class _Agent:
    name: str
    builtin: str | None  # a BUILTIN_AGENTS name, or None for a user object
    obj: Any = None


def _load_spec(spec: str) -> Any:
    """``module:attr`` -> the object (a class or factory without ``predict`` is called with no arguments);
    ``path.zip`` -> the SB3 model."""
    if spec.endswith(".zip"):
        from agents.sb3 import load_sb3

        return load_sb3(spec)
    if ":" not in spec:
        raise ValueError(f"unknown agent {spec!r}: use a built-in ({', '.join(BUILTIN_AGENTS)}), "
                         f"name=package.module:attr (an object with predict) or name=path/to/model.zip")
    try:
        obj: Any = import_attr(spec)
    except SpecAttributeError as err:
        raise ValueError(f"agent {spec!r}: module {err.module!r} has no attribute {err.attr!r}") from err
    except SpecImportError as err:
        raise ValueError(f"agent {spec!r}: cannot import module {err.module!r} ({err.__cause__})") from err
    except BadSpecError as err:
        raise ValueError(f"agent {spec!r}: {err}") from err
    attr = spec.partition(":")[2]
    if isinstance(obj, type) or (not hasattr(obj, "predict") and callable(obj)):
        try:
            obj = obj()  # a class or a factory: build the agent with no arguments
        except TypeError as err:
            raise ValueError(f"agent {spec!r}: calling {attr} with no arguments failed ({err}); point the spec at an "
                             f"object with predict, or at a class / factory that needs no arguments") from err
    if not hasattr(obj, "predict"):
        raise ValueError(f"agent {spec!r} has no predict method: an agent needs SB3's "
                         f"predict(observation, state=None, episode_start=None, deterministic=False)")
    return obj


def resolve_agents(agents) -> list[_Agent]:
    """Agent specs (a comma string, a list of specs, or a dict name -> spec / object) -> agents."""
    if isinstance(agents, str):
        agents = [a.strip() for a in agents.split(",") if a.strip()]
    items: list[tuple[str, Any]] = []
    if isinstance(agents, Mapping):
        items = list(agents.items())
    else:
        for spec in agents:
            if isinstance(spec, str) and "=" in spec:
                name, _, value = spec.partition("=")
                items.append((name.strip(), value.strip()))
            elif isinstance(spec, str):
                items.append((spec.split(":")[-1] if spec not in BUILTIN_AGENTS else spec, spec))
            else:
                items.append((type(spec).__name__, spec))
    out, seen = [], set()
    for name, value in items:
        if name in seen:
            raise ValueError(f"agent name {name!r} appears twice; give each agent its own name (name=spec)")
        seen.add(name)
        if isinstance(value, str) and value in BUILTIN_AGENTS:
            out.append(_Agent(name, value))
        elif isinstance(value, str):
            out.append(_Agent(name, None, _load_spec(value)))
        elif hasattr(value, "predict"):
            out.append(_Agent(name, None, value))
        else:
            raise ValueError(f"agent {name!r}: {value!r} is neither a built-in name ({', '.join(BUILTIN_AGENTS)}), a "
                             f"spec string, nor an object with SB3's predict method")
    return out


def observation_kind(agent: Any) -> str:
    """Which observations a predict-agent reads: its ``observation_kind``, else inferred from its
    ``observation_space`` (a Box: TopKFeatures; a Dict with topk_ids: TopK; another Dict: Dialogue-v0), else
    "features"."""
    from gymnasium import spaces

    kind = getattr(agent, "observation_kind", None)
    if kind is not None:
        if kind not in OBSERVATION_KINDS:
            raise ValueError(f"observation_kind={kind!r} must be one of {OBSERVATION_KINDS}")
        return kind
    space = getattr(agent, "observation_space", None)
    if isinstance(space, spaces.Dict):
        return "topk" if "topk_ids" in space.spaces else "tokens"
    return "features"


# ------------------------------------------------------------------------------------------------- evaluation
class _Evaluator:
    """Runs one reply per evaluation dialogue through the batched envs, for LM agents and predict agents, and
    turns them into ``agents.evaluate`` rows (same reward, KL, NLL, length fields as ``dialogue-rl evaluate``)."""

    def __init__(self, cfg: CompareConfig, ref_lm):
        import dialogue_env

        self.cfg = cfg
        self.ref_lm = ref_lm
        dialogues = dialogue_env.load_dataset(cfg.dataset, cfg.eval_split)
        n = len(dialogues) if cfg.eval_limit is None else min(cfg.eval_limit, len(dialogues))
        # An evenly spaced subset covers every intent of the (intent-ordered) split.
        self.indices = sorted({int(round(x)) for x in np.linspace(0, len(dialogues) - 1, n)})
        self.B = min(cfg.eval_batch_size, len(self.indices))
        self._envs: dict[str, Any] = {}

    def env(self, kind: str):
        if kind not in self._envs:
            import gymnasium as gym

            from dialogue_env.wrappers import TopKFeaturesVector

            kwargs = self.cfg.env_kwargs(self.cfg.eval_split)
            if kind in ("tokens", "lm"):
                venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=self.B,
                                    vectorization_mode="vector_entry_point", **kwargs)
            else:
                venv = gym.make_vec("dialogue_env/DialogueTopK-v0", num_envs=self.B,
                                    vectorization_mode="vector_entry_point", k=self.cfg.k, **kwargs)
                if kind == "features":
                    venv = TopKFeaturesVector(venv)
            self._envs[kind] = venv
        return self._envs[kind]

    def _chunks(self):
        for lo in range(0, len(self.indices), self.B):
            chunk = self.indices[lo:lo + self.B]
            yield chunk, chunk + [chunk[j % len(chunk)] for j in range(self.B - len(chunk))]

    @torch.no_grad()
    def run_lm(self, lm, *, greedy: bool, seed: int, progress=None):
        """Replies written by ``lm`` (sampling at ``cfg.temperature`` or greedy) through Dialogue-v0."""
        from agents.evaluate import rows_from_rollout
        from agents.rollout import generate_through_env

        venv = self.env("lm")
        generator = torch.Generator().manual_seed(seed)
        rows, steps, t0 = [], 0, time.perf_counter()
        for chunk, padded in self._chunks():
            ro = generate_through_env(venv, lm, temperature=self.cfg.temperature, greedy=greedy, generator=generator,
                                      dialogue_indices=padded)
            temps = (1.0,) if greedy else (self.cfg.temperature, 1.0)
            lps = _reply_logprobs(lm, ro, temps)
            act_logp = torch.zeros_like(lps[-1]) if greedy else lps[0]
            ref_logp = lps[-1] if lm is self.ref_lm else _reply_logprobs(self.ref_lm, ro, (1.0,))[0]
            rows += rows_from_rollout(ro, act_logp, ref_logp.to(act_logp.device), len(chunk))
            steps += int(ro.stats.get("env_steps", 0))
            if progress is not None:
                progress.update(len(chunk))
        return rows, steps, time.perf_counter() - t0

    @torch.no_grad()
    def run_predict(self, agent, kind: str, *, deterministic: bool, seed: int, progress=None):
        """Replies written by ``agent.predict`` through the batched TopK (or Dialogue-v0) env."""
        from agents.evaluate import rows_from_rollout
        from agents.rollout import Rollout
        from agents.sb3.vec_env import split_infos

        venv = self.env(kind)
        env = venv.unwrapped
        _check_agent_space(agent, venv)
        B, T = self.B, env.batch.max_new_tokens
        rows, steps, t0 = [], 0, time.perf_counter()
        for c, (chunk, padded) in enumerate(self._chunks()):
            obs, _ = venv.reset(seed=seed if c == 0 else None, options={"dialogue_indices": np.asarray(padded)})
            Lq = int(env.batch.mask.sum(1).max())
            query_ids = env.batch.ids[:, -Lq:].cpu().clone()  # (B, Lq) left-padded contexts
            query_mask = env.batch.mask[:, -Lq:].long().cpu().clone()
            response_ids = torch.full((B, T), env.batch.pad_id, dtype=torch.long)
            response_mask = torch.zeros((B, T), dtype=torch.long)
            act_logp = torch.zeros((B, T))
            ref_logp = torch.zeros((B, T))  # TopK envs: log p_ref of each chosen token, read from the env's top-k
            known = True
            done = np.zeros(B, dtype=bool)
            ended_info: list[dict] = [{} for _ in range(B)]
            scores, terminated = np.zeros(B), np.zeros(B, dtype=bool)
            state, episode_start = None, np.ones(B, dtype=bool)
            for t in range(T):
                actions, state = agent.predict(obs, state=state, episode_start=episode_start,
                                               deterministic=deterministic)
                actions = _as_actions(actions, B, venv.single_action_space)
                lp = _action_log_prob(agent, obs, actions, deterministic)
                if lp is None:
                    known = False
                else:
                    act_logp[:, t] = torch.as_tensor(np.asarray(lp, dtype=np.float64).reshape(B)).float()
                if kind == "tokens":
                    tokens = torch.as_tensor(actions)
                else:
                    index = torch.as_tensor(actions, device=env.ref.device).unsqueeze(1)  # (B, 1)
                    tokens = env.ref.topk_ids.gather(1, index).squeeze(1).cpu()
                    ref_logp[:, t] = env.ref.topk_logprobs.gather(1, index).squeeze(1).cpu()
                live = torch.as_tensor(~done)
                response_ids[:, t] = torch.where(live, tokens, response_ids[:, t])
                response_mask[:, t] = live.long()
                obs, rewards, term, trunc, infos = venv.step(actions)
                steps += B
                ended = (np.asarray(term) | np.asarray(trunc)) & ~done
                if ended.any():
                    per_env = split_infos(infos, B)
                    for i in np.nonzero(ended)[0]:
                        ended_info[i] = per_env[i]
                        scores[i] = float(rewards[i])
                        terminated[i] = bool(term[i])
                done |= ended
                episode_start = np.zeros(B, dtype=bool)
                if done.all():
                    break
            used = t + 1
            names: list[str] = []
            for info in ended_info:
                names += [k for k in info.get("reward_components", {}) if k not in names]
            components = {k: np.asarray([info.get("reward_components", {}).get(k, 0.0) for info in ended_info])
                          for k in names}
            ro = Rollout(query_ids=query_ids, query_mask=query_mask, response_ids=response_ids[:, :used],
                         response_mask=response_mask[:, :used], scores=scores, components=components,
                         responses=[info.get("response", "") for info in ended_info],
                         contexts=[info.get("context") for info in ended_info],
                         references=[info.get("reference") for info in ended_info],
                         dialogue_ids=[info.get("dialogue_id") for info in ended_info],
                         details=[info.get("reward_details", {}) for info in ended_info], terminated=terminated)
            if kind == "tokens":  # Dialogue-v0 holds no LM: one teacher-forced reference forward
                ref_logp = _reply_logprobs(self.ref_lm, ro, (1.0,))[0].cpu()
            else:  # the env's KV-cached forward already gave them (the same values, tested)
                ref_logp = ref_logp[:, :used]
            chunk_rows = rows_from_rollout(ro, act_logp[:, :used], ref_logp, len(chunk))
            if not known:
                for row in chunk_rows:
                    row["kl"] = None
            rows += chunk_rows
            if progress is not None:
                progress.update(len(chunk))
        return rows, steps, time.perf_counter() - t0

    def close(self):
        for venv in self._envs.values():
            venv.close()


def _reply_logprobs(model, ro, temperatures) -> list[torch.Tensor]:
    """``log softmax(logits / T)[a_t]`` (B, T) of the reply tokens of ``ro`` under ``model``, for each temperature,
    from one batched forward over context + reply (as ``agents.evaluate.sequence_logprobs``)."""
    from agents.ppo.functional import logprobs_from_logits
    from dialogue_env.models import position_ids

    device = next(model.parameters()).device
    ids, mask = ro.sequence()  # (B, Lq + T - 1)
    ids, mask = ids.to(device), mask.to(device).long()
    pos = position_ids(mask)
    T = ro.response_ids.shape[1]
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, logits_to_keep=T).logits
    logits = logits[:, -T:].float()  # (B, T, V)
    targets = ro.response_ids.to(device)
    return [logprobs_from_logits(logits / t, targets) for t in temperatures]


def _as_actions(actions, n: int, space) -> np.ndarray:
    a = np.asarray(actions)
    if a.size != n:
        raise ValueError(f"predict returned {a.size} action(s) for a batch of {n} observations; an agent's predict "
                         f"must return one action per row of the batch (as SB3 models do for VecEnv observations)")
    a = a.reshape(n)
    if a.dtype.kind == "f":
        a = np.round(a)
    a = a.astype(np.int64)
    if (a < 0).any() or (a >= space.n).any():
        raise ValueError(f"predict returned actions {a.tolist()} outside the action space Discrete({space.n})")
    return a


def _check_agent_space(agent, venv) -> None:
    space = getattr(agent, "observation_space", None)
    expected = venv.single_observation_space
    if space is None or not hasattr(space, "shape") or space.shape is None:
        return
    if space.shape != expected.shape:
        raise ValueError(f"agent expects observations of shape {space.shape} but this comparison's env gives "
                         f"{expected.shape} (model, k or wrapper differ from the ones it was trained with)")


def _action_log_prob(agent, obs, actions, deterministic: bool):
    if hasattr(agent, "action_log_prob"):
        return agent.action_log_prob(obs, actions, deterministic=deterministic)
    from stable_baselines3.common.base_class import BaseAlgorithm

    if isinstance(agent, BaseAlgorithm):
        from agents.sb3 import sb3_action_log_prob

        return sb3_action_log_prob(agent, obs, actions, deterministic)
    return np.zeros(len(actions)) if deterministic else None


# ---------------------------------------------------------------------------------------------------- training
def _ppo_config(cfg: CompareConfig, seed: int):
    from agents.ppo.config import PPOConfig

    path = cfg.ppo_config
    if path is None:
        default = _CONFIG_DIR / ("tiny.yaml" if cfg.model == "tiny-random" else "demo.yaml")
        path = str(default) if default.is_file() else None
    data: dict = {}
    if path is not None:
        found = Path(path)
        if not found.is_file() and not found.is_absolute() and (_CONFIG_DIR.parent / found).is_file():
            found = _CONFIG_DIR.parent / found  # a repository-relative path such as configs/demo.yaml
        if not found.is_file():
            raise FileNotFoundError(f"ppo_config {path} does not exist (give a PPOConfig YAML such as configs/demo.yaml)")
        data = PPOConfig.read_yaml(found)
    data.update({"model": cfg.model, "dataset": cfg.dataset, "reward": cfg.reward, "seed": seed,
                 "max_new_tokens": cfg.max_new_tokens, "max_context_tokens": cfg.max_context_tokens,
                 "temperature": cfg.temperature, "device": cfg.device, "time_limit_s": cfg.budget_seconds,
                 "final_split": "", "eval_every": 0, "logger": "none", "checkpoint_every": 0})
    data.update(cfg.ppo)
    if "total_iterations" not in cfg.ppo:
        per_iteration = int(data.get("num_envs", 16)) * cfg.max_new_tokens  # env steps of one full rollout
        data["total_iterations"] = max(1, math.ceil(cfg.budget_steps / per_iteration))
    return PPOConfig.from_dict(data)


def _train_ppo(cfg: CompareConfig, seed: int, out: Path, progress: bool):
    from agents.ppo.trainer import train
    from dialogue_env.models import load_policy

    ppo_cfg = _ppo_config(cfg, seed)
    t0 = time.perf_counter()
    result = train(ppo_cfg, out, progress_bar=progress, log=lambda *a, **k: None)
    wall = time.perf_counter() - t0
    lm, _ = load_policy(result["checkpoint"], device=cfg.device)
    curve, elapsed = [], 0.0
    for h in result.get("history", []):
        elapsed += float(h.get("charts/iteration_seconds", 0.0))
        curve.append({"env_steps": int(h.get("charts/env_steps", 0)), "wall_s": elapsed,
                      "reward": float(h.get("rewards/total", float("nan"))), "episodes": int(ppo_cfg.num_envs)})
    return lm, {"train_env_steps": int(result["progress"]["env_steps"]), "train_wall_s": wall,
                "artifact": result["checkpoint"]}, curve


def _train_sb3(cfg: CompareConfig, algo: str, observation: str, seed: int, out: Path, progress: bool):
    from agents.sb3 import train_sb3

    env_kwargs = {**cfg.env_kwargs("train"), "k": cfg.k}
    run = train_sb3(algo, total_timesteps=cfg.budget_steps, env_kwargs=env_kwargs, seed=seed, observation=observation,
                    hyperparams=cfg.sb3.get(algo, {}), out=out, budget_seconds=cfg.budget_seconds, progress=progress,
                    device=cfg.device)
    curve = [{**p, "episodes": 1} for p in run.curve]
    return run.model, {"train_env_steps": run.env_steps, "train_wall_s": run.wall_s, "artifact": str(run.path)}, curve


# ----------------------------------------------------------------------------------------------------- summary
def _ci(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(1.96 * v.std() / math.sqrt(len(v))) if len(v) else float("nan")


def summarize_agent(rows: list[dict]) -> dict:
    """Pooled summary of one agent's evaluation rows (all seeds): ``agents.evaluate.summarize`` plus a CI per
    component, per-seed reward means, KL (None if any row's is unknown) and the cost columns."""
    from agents.evaluate import summarize

    base = summarize([{**r, "kl": 0.0 if r["kl"] is None else r["kl"]} for r in rows])
    base["kl"] = None if any(r["kl"] is None for r in rows) else base["kl"]
    base["components_ci95"] = {k: _ci([r["components"].get(k, 0.0) for r in rows]) for k in base["components"]}
    seeds = sorted({r["seed"] for r in rows})
    base["seeds"] = seeds
    base["reward_by_seed"] = {s: float(np.mean([r["reward"] for r in rows if r["seed"] == s])) for s in seeds}
    runs = {s: next(r for r in rows if r["seed"] == s) for s in seeds}
    steps = sum(runs[s]["train_env_steps"] for s in seeds)
    wall = sum(runs[s]["train_wall_s"] for s in seeds)
    base["train_env_steps"] = steps / len(seeds)
    base["train_wall_s"] = wall / len(seeds)
    base["train_env_steps_per_s"] = steps / wall if wall > 0 else None
    eval_steps = sum(runs[s]["eval_env_steps"] for s in seeds)
    eval_wall = sum(runs[s]["eval_wall_s"] for s in seeds)
    base["eval_wall_s"] = eval_wall / len(seeds)
    base["eval_env_steps_per_s"] = eval_steps / eval_wall if eval_wall > 0 else None
    return base


def _f(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def markdown_table(summaries: Mapping[str, dict]) -> str:
    """One row per agent: reward and components (mean ± 95% CI), KL, perplexity, distinct-n, ethics, costs."""
    comps: list[str] = []
    for s in summaries.values():
        comps += [k for k in s["components"] if k not in comps]
    head = (["agent", "n", "reward"] + comps + ["KL", "perplexity", "distinct-1", "distinct-2", "ethics viol.",
                                                "train steps", "train wall (s)", "train steps/s", "eval steps/s"])
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, s in summaries.items():
        cells = [name, str(s["n"]), f"{_f(s['reward'])} ± {_f(s['reward_ci95'])}"]
        cells += [f"{_f(s['components'].get(k))} ± {_f(s['components_ci95'].get(k))}" for k in comps]
        cells += [_f(s["kl"], 2), _f(s["perplexity"], 2), _f(s["distinct_1"]), _f(s["distinct_2"]),
                  f"{100 * s['ethics_violation_rate']:.1f}%", f"{s['train_env_steps']:.0f}",
                  _f(s["train_wall_s"], 1), _f(s["train_env_steps_per_s"], 1), _f(s["eval_env_steps_per_s"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_text(summaries: Mapping[str, dict]) -> str:
    comps: list[str] = []
    for s in summaries.values():
        comps += [k for k in s["components"] if k not in comps]
    cols = (["agent", "n", "seeds", "reward", "reward_ci95"] + [c for k in comps for c in (k, f"{k}_ci95")]
            + ["kl", "perplexity", "distinct_1", "distinct_2", "ethics_violation_rate", "train_env_steps",
               "train_wall_s", "train_env_steps_per_s", "eval_wall_s", "eval_env_steps_per_s"])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(cols)
    for name, s in summaries.items():
        row = [name, s["n"], " ".join(map(str, s["seeds"])), s["reward"], s["reward_ci95"]]
        row += [x for k in comps for x in (s["components"].get(k), s["components_ci95"].get(k))]
        row += [s["kl"], s["perplexity"], s["distinct_1"], s["distinct_2"], s["ethics_violation_rate"],
                s["train_env_steps"], s["train_wall_s"], s["train_env_steps_per_s"], s["eval_wall_s"],
                s["eval_env_steps_per_s"]]
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------- plots
def _smooth(points: list[dict], window: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Running mean of the reward over the last ``window`` training episodes (a PPO point counts as many
    episodes as its rollout had). Returns (env_steps, wall_s, reward)."""
    grouped: dict[int, dict] = {}  # episodes that ended on the same env step (batched envs): one point
    for p in points:
        g = grouped.setdefault(int(p["env_steps"]), {"env_steps": int(p["env_steps"]), "wall_s": p["wall_s"],
                                                     "sum": 0.0, "episodes": 0})
        g["sum"] += p["reward"] * p.get("episodes", 1)
        g["episodes"] += p.get("episodes", 1)
        g["wall_s"] = max(g["wall_s"], p["wall_s"])
    pts = [{**g, "reward": g["sum"] / g["episodes"]} for _, g in sorted(grouped.items())]
    xs, ws, ys = [], [], []
    for i, p in enumerate(pts):
        total, weight, j = 0.0, 0, i
        while j >= 0 and weight < window:
            total += pts[j]["reward"] * pts[j].get("episodes", 1)
            weight += pts[j].get("episodes", 1)
            j -= 1
        xs.append(p["env_steps"])
        ws.append(p["wall_s"])
        ys.append(total / weight)
    return np.asarray(xs), np.asarray(ws), np.asarray(ys)


def _save_figure(fig, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)


def plot_curves(curves: Mapping[str, Mapping[int, list]], summaries: Mapping[str, dict], path: Path) -> None:
    """curves.png: training reward (running mean) vs env steps and vs wall time per trainable agent, one line per
    seed; stars mark each trained agent's evaluation reward; dashed lines the untrained agents' evaluation reward."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(CURVES_PNG_SIZE[0] / _DPI, CURVES_PNG_SIZE[1] / _DPI), dpi=_DPI)
    axes = fig.subplots(1, 2)
    colors = {name: f"C{i % 10}" for i, name in enumerate(summaries)}
    for name, by_seed in curves.items():
        for j, points in enumerate(by_seed.values()):
            if not points:
                continue
            steps, wall, reward = _smooth(points)
            label = name if j == 0 else None
            axes[0].plot(steps, reward, color=colors[name], alpha=0.8, lw=1.2, label=label)
            axes[1].plot(wall, reward, color=colors[name], alpha=0.8, lw=1.2, label=label)
    for name, s in summaries.items():
        if name in curves and any(curves[name].values()):
            axes[0].plot([s["train_env_steps"]], [s["reward"]], marker="*", ms=12, color=colors[name], ls="none")
            axes[1].plot([s["train_wall_s"]], [s["reward"]], marker="*", ms=12, color=colors[name], ls="none")
        else:
            for ax in axes:
                ax.axhline(s["reward"], color=colors[name], ls="--", lw=1.0, label=f"{name} (eval)")
    axes[0].set_xlabel("env steps (training)")
    axes[1].set_xlabel("wall time of training (s)")
    for ax in axes:
        ax.set_ylabel("reward per reply")
        ax.grid(alpha=0.3)
    axes[0].set_title("training reward (running mean); * = held-out eval", fontsize=10)
    axes[1].set_title("same, against wall time", fontsize=10)
    axes[1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    _save_figure(fig, path)


def plot_components(summaries: Mapping[str, dict], path: Path) -> None:
    """components.png: the held-out reward and each reward component per agent (mean, 95% CI error bars)."""
    from matplotlib.figure import Figure

    comps: list[str] = []
    for s in summaries.values():
        comps += [k for k in s["components"] if k not in comps]
    groups = ["reward"] + comps
    fig = Figure(figsize=(COMPONENTS_PNG_SIZE[0] / _DPI, COMPONENTS_PNG_SIZE[1] / _DPI), dpi=_DPI)
    ax = fig.subplots()
    names = list(summaries)
    width = 0.8 / len(groups)
    x = np.arange(len(names))
    for g, key in enumerate(groups):
        if key == "reward":
            vals = [summaries[n]["reward"] for n in names]
            errs = [summaries[n]["reward_ci95"] for n in names]
        else:
            vals = [summaries[n]["components"].get(key, np.nan) for n in names]
            errs = [summaries[n]["components_ci95"].get(key, np.nan) for n in names]
        ax.bar(x + (g - (len(groups) - 1) / 2) * width, vals, width, yerr=errs, capsize=2, label=key,
               color="black" if key == "reward" else f"C{g % 10}", alpha=0.85)
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=9)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("held-out value (mean ± 95% CI)")
    ax.set_title("reward and its components per agent (components unweighted)", fontsize=10)
    ax.legend(fontsize=8, ncol=min(len(groups), 5))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path)


# ------------------------------------------------------------------------------------------------------ output
def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


# ------------------------------------------------------------------------------------------------------- main
def compare(agents=None, *, out, config: CompareConfig | Mapping | str | None = None, progress: bool = True,
            log=print, **settings) -> dict:
    """Train (with the same budget) and evaluate (on the same held-out dialogues) every agent; write the outputs.

    Args:
        agents: None (``config.agents``), a comma string, a list of specs, or a dict ``name -> spec or object``
            (an object with SB3's ``predict``: an SB3 model or your own agent).
        out: output directory.
        config: a ``CompareConfig``, a dict of its fields, or a YAML path; ``settings`` override single fields
            (e.g. ``model="tiny-random", seeds=[0], budget_steps=512``).
    Returns:
        ``{"summaries": {agent: summary}, "rows": [...], "curves": {...}, "paths": {...}}``.
    """
    if isinstance(config, (str, os.PathLike)):
        cfg = CompareConfig.from_yaml(config, **settings)
    elif isinstance(config, CompareConfig):
        cfg = CompareConfig.from_dict({**dataclasses.asdict(config), **settings})
    else:
        cfg = CompareConfig.from_dict({**(config or {}), **settings})
    entries = resolve_agents(agents if agents is not None else cfg.agents)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    import dialogue_env  # noqa: F401
    from agents.baselines import RandomAgent
    from agents.evaluate import apply_ethics
    from dialogue_env.topk import reference_lm

    t_start = time.perf_counter()
    ref_lm = reference_lm(cfg.model, str(torch.device(cfg.device)))
    evaluator = _Evaluator(cfg, ref_lm)
    log(f"[compare] {len(entries)} agents x {len(cfg.seeds)} seeds on {cfg.model}; budget {cfg.budget_steps} env steps"
        f"{'' if cfg.budget_seconds is None else f' / {cfg.budget_seconds:.0f} s'}; evaluation on "
        f"{len(evaluator.indices)} {cfg.eval_split} dialogues")
    rows: list[dict] = []
    curves: dict[str, dict[int, list]] = {}
    paths = {name: out / name for name in ("episodes.jsonl", "curves.jsonl", "summary.md", "summary.csv",
                                           "summary.json", "curves.png", "components.png")}

    def write_rows() -> None:  # after every agent and seed, so a long run's finished work is on disk
        _write(paths["episodes.jsonl"], "".join(json.dumps(r, default=_json_default, ensure_ascii=False) + "\n"
                                                for r in rows))
        _write(paths["curves.jsonl"], "".join(json.dumps({"agent": a, "seed": s, **p}, default=_json_default) + "\n"
                                              for a, by_seed in curves.items() for s, pts in by_seed.items()
                                              for p in pts))

    try:
        for entry in entries:
            for seed in cfg.seeds:
                eval_seed = cfg.eval_seed_offset + seed
                agent_dir = out / "agents" / entry.name / f"seed-{seed}"
                train_info = {"train_env_steps": 0, "train_wall_s": 0.0, "artifact": None}
                b = entry.builtin
                if b == "ppo":
                    lm, train_info, curve = _train_ppo(cfg, seed, agent_dir, progress)
                    curves.setdefault(entry.name, {})[seed] = curve
                elif b is not None and b.startswith("sb3-"):
                    algo = b.split("-")[1]
                    observation = "tokens" if b.endswith("-tokens") else "features"
                    model, train_info, curve = _train_sb3(cfg, algo, observation, seed, agent_dir, progress)
                    curves.setdefault(entry.name, {})[seed] = curve
                torch.manual_seed(eval_seed)
                np.random.seed(eval_seed)
                bar = tqdm(total=len(evaluator.indices), desc=f"eval {entry.name} seed {seed}", unit="dlg",
                           disable=not progress, dynamic_ncols=True)
                try:
                    if b == "ppo":
                        kind = "lm"
                        agent_rows, steps, secs = evaluator.run_lm(lm, greedy=False, seed=eval_seed, progress=bar)
                        del lm
                    elif b in ("reference", "reference-greedy"):
                        kind = "lm"
                        agent_rows, steps, secs = evaluator.run_lm(ref_lm, greedy=b == "reference-greedy",
                                                                   seed=eval_seed, progress=bar)
                    else:
                        if b == "random":
                            agent: Any = RandomAgent(cfg.k, seed=eval_seed)
                        elif b is not None:
                            agent = model
                        else:
                            agent = entry.obj
                            if hasattr(agent, "reseed"):
                                agent.reseed(eval_seed)
                        kind = "tokens" if b == "sb3-ppo-tokens" else observation_kind(agent)
                        agent_rows, steps, secs = evaluator.run_predict(agent, kind, deterministic=cfg.deterministic,
                                                                        seed=eval_seed, progress=bar)
                finally:
                    bar.close()
                apply_ethics(agent_rows)
                for row in agent_rows:
                    row.update({"agent": entry.name, "builtin": b, "observation": kind, "seed": seed,
                                "eval_seed": eval_seed, "eval_env_steps": steps, "eval_wall_s": secs, **train_info})
                rows += agent_rows
                write_rows()
                log(f"[compare] {entry.name} seed {seed}: reward {np.mean([r['reward'] for r in agent_rows]):.3f} "
                    f"(train {train_info['train_env_steps']} steps, {train_info['train_wall_s']:.0f} s; "
                    f"eval {secs:.0f} s)")
    finally:
        evaluator.close()

    summaries = {e.name: summarize_agent([r for r in rows if r["agent"] == e.name]) for e in entries}
    table = markdown_table(summaries)
    header = (f"# Agent comparison: {cfg.model}, {cfg.dataset} ({cfg.eval_split} split)\n\n"
              f"{len(evaluator.indices)} held-out dialogues x {len(cfg.seeds)} seeds (training seeds {cfg.seeds}, "
              f"evaluation seeds {[cfg.eval_seed_offset + s for s in cfg.seeds]}); training budget "
              f"{cfg.budget_steps} env steps per agent and seed"
              f"{'' if cfg.budget_seconds is None else f' or {cfg.budget_seconds:.0f} s'}; total wall time "
              f"{time.perf_counter() - t_start:.0f} s.\n\n")
    _write(paths["summary.md"], header + table + "\n\nReward and components: mean ± 95% CI over replies. "
           "KL: per reply, to the reference, of the distribution the agent acted from. Costs: per seed.\n\n"
           "![reward curves](curves.png)\n\n![reward components](components.png)\n")
    _write(paths["summary.csv"], csv_text(summaries))
    _write(paths["summary.json"], json.dumps({"config": dataclasses.asdict(cfg) | {"agents": [e.name for e in entries]},
                                              "summaries": summaries}, indent=2, default=_json_default))
    plot_curves(curves, summaries, paths["curves.png"])
    plot_components(summaries, paths["components.png"])
    log(table)
    log(f"[compare] wrote {', '.join(str(p) for p in paths.values())}")
    return {"summaries": summaries, "rows": rows, "curves": curves, "paths": paths, "config": cfg}


def _csv_list(text: str, cast=str) -> list:
    return [cast(x.strip()) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dialogue-rl compare",
        description="Train agents with the same env-step budget and evaluate them on the same held-out dialogues; "
                    "writes episodes.jsonl, summary.md/.csv/.json, curves.png and components.png to --out.")
    p.add_argument("--config", default=None, help="YAML of compare settings (e.g. configs/compare.yaml)")
    p.add_argument("--agents", default=None,
                   help="comma-separated: built-ins (" + ",".join(BUILTIN_AGENTS) + "), name=package.module:attr "
                        "(an object with SB3's predict) or name=path/to/model.zip; default: "
                        + ",".join(DEFAULT_AGENTS))
    p.add_argument("--seeds", default=None, help="comma-separated training seeds (default 0,1,2)")
    p.add_argument("--model", default=None, help="smollm2-135m (default), tiny-random, a hub id or a path")
    p.add_argument("--budget-steps", type=int, default=None, help="training env steps per agent and seed")
    p.add_argument("--budget-seconds", type=float, default=None, help="optional wall-time cap per training run")
    p.add_argument("--dataset", default=None)
    p.add_argument("--eval-split", default=None, choices=["train", "validation", "test"])
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on this many dialogues (default: all)")
    p.add_argument("--eval-batch-size", type=int, default=None)
    p.add_argument("--eval-seed-offset", type=int, default=None,
                   help="evaluation seed = offset + training seed (default 10000; must not hit a training seed)")
    p.add_argument("--reward", default=None, help="a reward name or a JSON dict (default: the seed's reward)")
    p.add_argument("--k", type=int, default=None, help="actions of DialogueTopK-v0 (default 50)")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--max-context-tokens", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--stochastic", action="store_true", help="evaluate predict-agents with deterministic=False")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, help="output directory")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings: dict[str, Any] = {}
    for key in ("model", "budget_steps", "budget_seconds", "dataset", "eval_split", "eval_limit", "eval_batch_size",
                "eval_seed_offset", "k", "max_new_tokens", "max_context_tokens", "temperature", "device"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    if args.agents is not None:
        settings["agents"] = _csv_list(args.agents)
    if args.seeds is not None:
        try:
            settings["seeds"] = _csv_list(args.seeds, int)
        except ValueError as err:
            raise SystemExit(f"--seeds {args.seeds!r}: give comma-separated integers such as 0,1,2") from err
    if args.reward is not None:
        text = args.reward.strip()
        try:
            settings["reward"] = json.loads(text) if text.startswith("{") else text
        except json.JSONDecodeError as err:
            raise SystemExit(f"--reward {args.reward!r} looks like JSON but does not parse: {err}") from err
    if args.stochastic:
        settings["deterministic"] = False
    agents = settings.pop("agents", None)
    compare(agents, out=args.out, config=args.config, progress=not args.no_progress, **settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Who competes: the built-in agents as a table of name -> :class:`AgentSpec`, and user agents (objects with SB3's
``predict``, ``module:attr`` specs, SB3 ``.zip`` files: pickles, trusted code, loaded with a warning). A trainable spec trains with the comparison's budget and
returns its actor; an untrained one builds it. An actor that is a ``torch.nn.Module`` is a language model and writes
on ``Dialogue-v0``; any other actor is a predict agent and is evaluated on the env its observations come from."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewards.utils import ConfigError

from .config import OBSERVATION_KINDS, CompareConfig


@dataclass(frozen=True)
class AgentSpec:
    """A built-in agent. ``train(cfg, seed, out_dir, progress) -> (actor, train_info, curve)`` for trainable agents;
    ``build(cfg, ref_lm, eval_seed) -> actor`` for the others. ``env``: the evaluation env of a predict actor
    ("features", "topk", "tokens"; None: from its observation space). ``greedy``: an LM actor decodes greedily."""

    description: str
    train: Callable | None = None
    build: Callable | None = None
    env: str | None = None
    greedy: bool = False


@dataclass
class _Agent:
    name: str
    builtin: str | None  # a BUILTIN_AGENTS name, or None for a user object
    obj: Any = None


def _load_spec(spec: str, log=print) -> Any:
    """``module:attr`` -> the object (a class or factory without ``predict`` is called with no arguments);
    ``path.zip`` -> the SB3 model (a pickle: loading it runs code from the file, so ``log`` gets a warning)."""
    if spec.endswith(".zip"):
        from agents.sb3 import load_sb3

        return load_sb3(spec, warn=log)
    if ":" not in spec:
        raise ConfigError(f"unknown agent {spec!r}: use a built-in ({', '.join(BUILTIN_AGENTS)}), "
                         f"name=package.module:attr (an object with predict) or name=path/to/model.zip")
    from rewards.utils import BadSpecError, SpecAttributeError, SpecImportError, import_attr

    try:
        obj: Any = import_attr(spec)
    except SpecAttributeError as err:
        raise ConfigError(f"agent {spec!r}: module {err.module!r} has no attribute {err.attr!r}") from err
    except SpecImportError as err:
        raise ConfigError(f"agent {spec!r}: cannot import module {err.module!r} ({err.__cause__})") from err
    except BadSpecError as err:
        raise ConfigError(f"agent {spec!r}: {err}") from err
    attr = spec.partition(":")[2]
    if isinstance(obj, type) or (not hasattr(obj, "predict") and callable(obj)):
        try:
            obj = obj()  # a class or a factory: build the agent with no arguments
        except TypeError as err:
            raise ConfigError(f"agent {spec!r}: calling {attr} with no arguments failed ({err}); point the spec at an "
                             f"object with predict, or at a class / factory that needs no arguments") from err
    if not hasattr(obj, "predict"):
        raise ConfigError(f"agent {spec!r} has no predict method: an agent needs SB3's "
                         f"predict(observation, state=None, episode_start=None, deterministic=False)")
    return obj


def resolve_agents(agents, log=print) -> list[_Agent]:
    """Agent specs (a comma string, a list of specs, or a dict name -> spec / object) -> agents. ``log`` gets the
    warning printed for each SB3 ``.zip`` loaded (a pickle: only load ones you trust)."""
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
            raise ConfigError(f"agent name {name!r} appears twice; give each agent its own name (name=spec)")
        seen.add(name)
        if isinstance(value, str) and value in BUILTIN_AGENTS:
            out.append(_Agent(name, value))
        elif isinstance(value, str):
            out.append(_Agent(name, None, _load_spec(value, log)))
        elif hasattr(value, "predict"):
            out.append(_Agent(name, None, value))
        else:
            raise ConfigError(f"agent {name!r}: {value!r} is neither a built-in name ({', '.join(BUILTIN_AGENTS)}), a "
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


def _ppo_config(cfg: CompareConfig, seed: int):
    from agents.ppo.config import PPOConfig
    from agents.presets import resolve_config
    from rewards.utils import ConfigFileNotFoundError

    name = cfg.ppo_config or ("tiny" if cfg.model == "tiny-random" else "demo")
    try:
        path = resolve_config(name)
    except ConfigFileNotFoundError as err:
        raise ConfigFileNotFoundError(f"ppo_config: {err}") from None
    data = PPOConfig.read_yaml(path)
    data.update({"model": cfg.model, "dataset": cfg.dataset, "reward": cfg.reward, "seed": seed,
                 "max_new_tokens": cfg.max_new_tokens, "max_context_tokens": cfg.max_context_tokens,
                 "temperature": cfg.temperature, "device": cfg.device, "time_limit_s": cfg.budget_seconds,
                 "final_split": "", "eval_every": 0, "logger": "none", "checkpoint_every": 0, "turns": cfg.turns,
                 "user_simulator": cfg.user_simulator, "simulator_model": cfg.simulator_model})
    data.update(cfg.ppo)
    if "total_iterations" not in cfg.ppo:
        per_iteration = int(data.get("num_envs", 16)) * cfg.max_new_tokens * cfg.turns  # env steps of a full rollout
        data["total_iterations"] = max(1, math.ceil(cfg.budget_steps / per_iteration))
    return PPOConfig.from_dict(data)


def train_ppo(cfg: CompareConfig, seed: int, out: Path, progress: bool):
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


def train_sb3(cfg: CompareConfig, seed: int, out: Path, progress: bool, *, algo: str, observation: str):
    from agents.sb3 import train_sb3

    env_kwargs = {**cfg.env_kwargs("train"), "k": cfg.k}
    run = train_sb3(algo, total_timesteps=cfg.budget_steps, env_kwargs=env_kwargs, seed=seed, observation=observation,
                    hyperparams=cfg.sb3.get(algo, {}), out=out, budget_seconds=cfg.budget_seconds, progress=progress,
                    device=cfg.device)
    curve = [{**p, "episodes": 1} for p in run.curve]
    return run.model, {"train_env_steps": run.env_steps, "train_wall_s": run.wall_s, "artifact": str(run.path)}, curve


def _best_of_n(cfg: CompareConfig, ref_lm, eval_seed: int):
    from agents.best_of_n import BestOfN

    return BestOfN(ref_lm, n=cfg.best_of_n, temperature=cfg.temperature)


def _random_agent(cfg: CompareConfig, ref_lm, eval_seed: int):
    from agents.baselines import RandomAgent

    return RandomAgent(cfg.k, seed=eval_seed)


BUILTINS: dict[str, AgentSpec] = {
    "ppo": AgentSpec("our token-level PPO on Dialogue-v0 (full vocabulary, KL-shaped towards the reference)",
                     train=train_ppo),
    "sb3-ppo": AgentSpec("Stable-Baselines3 PPO, MlpPolicy on DialogueTopK-v0 + TopKFeatures",
                         train=functools.partial(train_sb3, algo="ppo", observation="features"), env="features"),
    "sb3-a2c": AgentSpec("Stable-Baselines3 A2C, MlpPolicy on DialogueTopK-v0 + TopKFeatures",
                         train=functools.partial(train_sb3, algo="a2c", observation="features"), env="features"),
    "sb3-dqn": AgentSpec("Stable-Baselines3 DQN, MlpPolicy on DialogueTopK-v0 + TopKFeatures",
                         train=functools.partial(train_sb3, algo="dqn", observation="features"), env="features"),
    "sb3-ppo-tokens": AgentSpec("Stable-Baselines3 PPO, MultiInputPolicy on Dialogue-v0 itself",
                                train=functools.partial(train_sb3, algo="ppo", observation="tokens"), env="tokens"),
    "reference": AgentSpec("the reference LM, zero-shot, sampling at the temperature",
                           build=lambda cfg, ref_lm, seed: ref_lm),
    "reference-greedy": AgentSpec("the reference LM, greedy", build=lambda cfg, ref_lm, seed: ref_lm, greedy=True),
    "random": AgentSpec("uniform over the k actions of DialogueTopK-v0", build=_random_agent, env="topk"),
    "best-of-n": AgentSpec("the reference LM samples best_of_n replies per turn, the env's reward keeps the best "
                           "(agents.best_of_n; no training)", build=_best_of_n, env="lm"),
}
BUILTIN_AGENTS = tuple(BUILTINS)

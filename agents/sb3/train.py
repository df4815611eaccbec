"""Train Stable-Baselines3 PPO, A2C and DQN on ``DialogueTopK-v0`` through SB3's public API only.

The env is the batched ``DialogueTopK-v0`` twin (one reference-LM forward per step for all ``n_envs``), wrapped in
``TopKFeaturesVector`` (a flat float observation), bridged to SB3 by ``GymVectorToSB3`` and monitored by SB3's
``VecMonitor``. The policy is SB3's ``MlpPolicy`` with ``TopKFeaturesExtractor`` given through ``policy_kwargs``;
hyperparameters are SB3's own names (``n_steps``, ``batch_size``, ``n_epochs``, ``learning_rate``, ``ent_coef``,
``buffer_size``, ``train_freq``, ...), plus ``n_envs``. ``observation="tokens"`` trains on ``Dialogue-v0`` itself
with ``MultiInputPolicy`` (raw token ids as input, ``Discrete(V)`` actions): the extra row that shows why an agent
needs a language model.

Models are saved in SB3's ``.zip`` format (written to a temporary file, then renamed into place) with a small
``.json`` sidecar naming the algorithm and the env settings, so ``load_sb3(path)`` needs nothing else. A ``.zip``
is a pickle, not plain data: loading one runs code from it, so load only files you trust (``load_sb3`` warns).

Episode rewards seen during training (from ``VecMonitor``) are recorded against env steps and wall time by
``LearningCurveCallback``; ``BudgetCallback`` stops training when a wall-time budget runs out.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecMonitor

from rewards.utils import atomic_path, atomic_write_text, import_attr

from .policies import TopKFeaturesExtractor
from .vec_env import GymVectorToSB3

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN}
OBSERVATIONS = ("features", "tokens")

# SB3 hyperparameter names; ``n_envs`` is the number of batched envs (one reference forward per step for all of
# them: 16 envs make a step about twice as cheap per env as 8 on a CPU). A PPO rollout is n_envs * n_steps = 1024
# env steps, so a 16k-step budget gives 16 PPO updates, 128 A2C updates and 512 DQN gradient steps.
DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "ppo": {"n_envs": 16, "n_steps": 64, "batch_size": 256, "n_epochs": 4, "learning_rate": 3e-4, "gamma": 0.99,
            "gae_lambda": 0.95, "ent_coef": 0.01, "clip_range": 0.2},
    "a2c": {"n_envs": 16, "n_steps": 8, "learning_rate": 7e-4, "gamma": 0.99, "gae_lambda": 1.0, "ent_coef": 0.01},
    "dqn": {"n_envs": 16, "learning_rate": 5e-4, "buffer_size": 20_000, "learning_starts": 512, "batch_size": 64,
            "train_freq": 4, "gradient_steps": 2, "target_update_interval": 1000, "exploration_fraction": 0.3,
            "exploration_final_eps": 0.05, "gamma": 0.99},
}


def default_policy_kwargs(observation: str, k: int) -> dict:
    """``policy_kwargs`` used unless overridden: the TopK extractor and a 64-64 MLP (features), or SB3's defaults
    with a 64-64 MLP on the combined token-id inputs (tokens)."""
    if observation == "features":
        return {"features_extractor_class": TopKFeaturesExtractor,
                "features_extractor_kwargs": {"k": int(k), "hidden_dim": 64}, "net_arch": [64, 64]}
    return {"net_arch": [64, 64]}


def _resolve_policy_kwargs(kwargs: dict) -> dict:
    """``"module:attr"`` strings for classes and functions (e.g. from YAML) -> the objects."""
    out = dict(kwargs)
    for key, value in kwargs.items():
        if isinstance(value, str) and (key.endswith("_class") or key.endswith("_fn")):
            out[key] = import_attr(value)
    return out


def make_sb3_env(n_envs: int, env_kwargs: dict, observation: str = "features", seed: int | None = None) -> VecMonitor:
    """The batched env SB3 trains on: ``VecMonitor(GymVectorToSB3(TopKFeaturesVector(DialogueTopK-v0 twin)))``, or
    with ``observation="tokens"`` the ``Dialogue-v0`` twin (``env_kwargs`` without ``k``)."""
    import gymnasium as gym

    import dialogue_env  # noqa: F401  (registers the envs)
    from dialogue_env.wrappers import make_topk_features_vec

    if observation == "features":
        venv = make_topk_features_vec(n_envs, **env_kwargs)
    elif observation == "tokens":
        kwargs = {k: v for k, v in env_kwargs.items() if k not in ("k", "lm")}
        venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=n_envs, vectorization_mode="vector_entry_point",
                            **kwargs)
    else:
        raise ValueError(f"observation={observation!r}: use one of {OBSERVATIONS}")
    env = VecMonitor(GymVectorToSB3(venv))
    if seed is not None:
        env.seed(seed)
    return env


class LearningCurveCallback(BaseCallback):
    """Records every finished training episode (from ``VecMonitor``'s ``info["episode"]``) as
    ``{"env_steps", "wall_s", "reward", "length"}``; with ``progress`` shows a tqdm bar over ``total`` env steps."""

    def __init__(self, total: int | None = None, progress: bool = False, desc: str = "sb3"):
        super().__init__()
        self.points: list[dict] = []
        self.total, self.progress, self.desc = total, progress, desc
        self.bar = None
        self.t0 = 0.0

    def _on_training_start(self) -> None:
        self.t0 = time.perf_counter()
        if self.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit="step", dynamic_ncols=True)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            episode = info.get("episode")
            if episode is not None:
                self.points.append({"env_steps": int(self.num_timesteps), "wall_s": time.perf_counter() - self.t0,
                                    "reward": float(episode["r"]), "length": int(episode["l"])})
        if self.bar is not None:
            self.bar.update(self.num_timesteps - self.bar.n)
            if self.points:
                recent = [p["reward"] for p in self.points[-50:]]
                self.bar.set_postfix(reward=f"{np.mean(recent):.3f}")
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


class BudgetCallback(BaseCallback):
    """Stops training once ``seconds`` of wall time have passed since ``learn`` started (None = no limit)."""

    def __init__(self, seconds: float | None):
        super().__init__()
        self.seconds = seconds
        self.t0 = 0.0

    def _on_training_start(self) -> None:
        self.t0 = time.perf_counter()

    def _on_step(self) -> bool:
        return self.seconds is None or time.perf_counter() - self.t0 < self.seconds


@dataclass
class SB3Run:
    """A trained SB3 agent and what its training cost."""

    model: BaseAlgorithm
    algo: str
    observation: str
    env_steps: int
    wall_s: float
    curve: list = field(default_factory=list)
    path: Path | None = None


def save_sb3(model: BaseAlgorithm, path, meta: dict) -> Path:
    """Save ``model`` to ``path`` (SB3 ``.zip``) and ``meta`` to the ``.json`` next to it, each atomically."""
    path = Path(path)
    if path.suffix != ".zip":
        raise ValueError(f"{path}: an SB3 model path must end in .zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # the temporary ends in .zip too (SB3 would add .zip to a name without it)
        model.save(tmp)
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, default=str))
    return path


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def load_sb3(path, algo: str | None = None, device: str = "cpu", warn=_warn) -> BaseAlgorithm:
    """Load an SB3 ``.zip`` saved by ``train_sb3`` (the algorithm is read from the ``.json`` next to it) or by SB3
    itself (then pass ``algo``: ppo, a2c or dqn).

    An SB3 ``.zip`` holds pickles: loading one runs code from the file. Only load ``.zip`` agents you trust;
    ``warn`` (default: print to stderr) gets a one-line warning naming the file before it is loaded."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SB3 model {path} does not exist")
    meta_path = path.with_suffix(".json")
    if algo is None and meta_path.is_file():
        algo = json.loads(meta_path.read_text()).get("algo")
    if algo is None:
        raise ValueError(f"{path} has no {meta_path.name} naming its algorithm: pass algo= (one of {sorted(ALGOS)})")
    if algo not in ALGOS:
        raise ValueError(f"algo={algo!r} is not one of {sorted(ALGOS)}")
    if warn is not None:
        warn(f"[dialogue-rl] warning: loading {path}: only load .zip agents you trust: loading runs code from the file")
    return ALGOS[algo].load(str(path), device=device)


def train_sb3(algo: str, *, total_timesteps: int, env_kwargs: dict, seed: int = 0, observation: str = "features",
              hyperparams: dict | None = None, out=None, budget_seconds: float | None = None, progress: bool = True,
              device: str = "cpu", callback: BaseCallback | list | None = None) -> SB3Run:
    """Train SB3 ``algo`` (ppo, a2c, dqn) for ``total_timesteps`` env steps (SB3 finishes the rollout in progress,
    so PPO and A2C may run up to one rollout more) or ``budget_seconds`` of wall time, whichever comes first.

    Args:
        env_kwargs: ``DialogueTopK-v0`` keyword arguments (model, dataset, split, reward, k, max_new_tokens, ...).
        hyperparams: overrides of ``DEFAULT_HYPERPARAMS[algo]`` (SB3 names, plus ``n_envs`` and ``policy_kwargs``
            merged over ``default_policy_kwargs``; classes may be given as ``"module:attr"`` strings).
        out: a directory; the model goes to ``out/model.zip`` (and ``out/model.json``).
        callback: your own SB3 callback(s), run after the learning-curve and budget callbacks.
    Returns:
        an ``SB3Run`` with the model, env steps and wall time used, and the learning curve.
    """
    if algo not in ALGOS:
        raise ValueError(f"unknown SB3 algorithm {algo!r}; use one of {sorted(ALGOS)}")
    if total_timesteps < 1:
        raise ValueError(f"total_timesteps={total_timesteps} must be at least 1")
    hp = {**DEFAULT_HYPERPARAMS[algo], **(hyperparams or {})}
    n_envs = int(hp.pop("n_envs"))
    policy_kwargs = {**default_policy_kwargs(observation, env_kwargs.get("k", 50)), **hp.pop("policy_kwargs", {})}
    if "features_extractor_kwargs" in policy_kwargs and observation == "features":
        policy_kwargs["features_extractor_kwargs"] = {"k": int(env_kwargs.get("k", 50)),
                                                      **policy_kwargs["features_extractor_kwargs"]}
    policy_kwargs = _resolve_policy_kwargs(policy_kwargs)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    env = make_sb3_env(n_envs, env_kwargs, observation, seed=seed)
    policy = "MlpPolicy" if observation == "features" else "MultiInputPolicy"
    model = ALGOS[algo](policy, env, seed=seed, policy_kwargs=policy_kwargs, device=device, verbose=0, **hp)
    curve = LearningCurveCallback(total=total_timesteps, progress=progress, desc=f"sb3-{algo}")
    extra = [] if callback is None else (list(callback) if isinstance(callback, list) else [callback])
    model.learn(total_timesteps=int(total_timesteps),
                callback=CallbackList([curve, BudgetCallback(budget_seconds), *extra]))
    wall = time.perf_counter() - t0
    path = None
    if out is not None:
        meta = {"format": "dialogue-rl-sb3", "algo": algo, "observation": observation, "seed": seed,
                "env_kwargs": {k: v for k, v in env_kwargs.items() if k != "lm"}, "hyperparams": hp,
                "n_envs": n_envs, "env_steps": int(model.num_timesteps), "wall_s": wall}
        path = save_sb3(model, Path(out) / "model.zip", meta)
    env.close()
    return SB3Run(model=model, algo=algo, observation=observation, env_steps=int(model.num_timesteps), wall_s=wall,
                  curve=curve.points, path=path)


def sb3_action_log_prob(model: BaseAlgorithm, observation, actions, deterministic: bool) -> np.ndarray:
    """``log pi(a | s)`` (N,) of the distribution ``model.predict(observation, deterministic=...)`` samples from:
    0 for deterministic predictions; the policy distribution for actor-critic models (PPO, A2C); for DQN the
    epsilon-greedy mixture ``(1 - eps) [a = argmax Q] + eps / n`` at the current exploration rate."""
    a = np.asarray(actions).reshape(-1)
    if deterministic:
        return np.zeros(a.shape[0])
    policy = model.policy
    obs_tensor, _ = policy.obs_to_tensor(observation)
    with torch.no_grad():
        if hasattr(policy, "get_distribution"):
            dist = policy.get_distribution(obs_tensor)
            return dist.log_prob(torch.as_tensor(a, device=policy.device)).cpu().numpy().astype(np.float64)
        if isinstance(model, DQN):
            greedy = policy.q_net(obs_tensor).argmax(-1).cpu().numpy().reshape(-1)
            eps, n = float(model.exploration_rate), int(model.action_space.n)
            return np.log((1 - eps) * (a == greedy) + eps / n)
    raise TypeError(f"cannot compute action log-probs for {type(model).__name__}")


__all__ = ["ALGOS", "DEFAULT_HYPERPARAMS", "BudgetCallback", "LearningCurveCallback", "SB3Run", "default_policy_kwargs",
           "load_sb3", "make_sb3_env", "sb3_action_log_prob", "save_sb3", "train_sb3"]

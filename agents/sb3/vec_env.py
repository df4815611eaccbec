"""An SB3 ``VecEnv`` around a Gymnasium 1.x vector env, so SB3 algorithms can train on our batched twins.

Gymnasium 1.x vector envs (``DialogueVectorEnv``, ``DialogueTopKVectorEnv`` and wrappers of them) reset a finished
sub-env on the *next* step; SB3 expects the step that ends an episode to return the first observation of the next
one, with the final observation in ``info["terminal_observation"]``. ``GymVectorToSB3`` bridges the two: when
sub-envs finish, it keeps their final observations and immediately resets just those sub-envs with
``reset(options={"reset_mask": done})`` (which our vector envs support). Infos are converted from Gymnasium's
dict-of-arrays form to SB3's list of dicts; ``TimeLimit.truncated`` is set for truncated episodes so SB3
bootstraps their value.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv


def split_infos(infos: dict, num_envs: int) -> list[dict]:
    """Gymnasium vector infos (``{key: array, "_key": mask}``, nested for dict values) -> one dict per sub-env."""
    out: list[dict] = [{} for _ in range(num_envs)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}", np.ones(num_envs, dtype=bool))
        if isinstance(value, dict):
            nested = split_infos(value, num_envs)
            for i in range(num_envs):
                if mask[i]:
                    out[i][key] = nested[i]
            continue
        for i in range(num_envs):
            if mask[i]:
                item = value[i]
                out[i][key] = item.item() if isinstance(item, np.generic) else item
    return out


def _row(obs: Any, i: int) -> Any:
    if isinstance(obs, dict):
        return {k: np.array(v[i], copy=True) for k, v in obs.items()}
    return np.array(obs[i], copy=True)


class GymVectorToSB3(VecEnv):
    """Expose a Gymnasium vector env with next-step autoreset and ``reset_mask`` support as an SB3 ``VecEnv``.

    >>> venv = GymVectorToSB3(make_topk_features_vec(8, model="tiny-random", reward="length"))
    >>> model = stable_baselines3.PPO("MlpPolicy", venv)
    """

    def __init__(self, venv: gym.vector.VectorEnv):
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self):
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, infos = self.venv.reset(seed=seeds)
        self.reset_infos = split_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        dones = np.asarray(terminated) | np.asarray(truncated)
        info_list = split_infos(infos, self.num_envs)
        if dones.any():
            for i in np.nonzero(dones)[0]:
                info_list[i]["terminal_observation"] = _row(obs, i)
                info_list[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            obs, reset_infos = self.venv.reset(options={"reset_mask": dones})
            for i, info in enumerate(split_infos(reset_infos, self.num_envs)):
                if dones[i]:
                    self.reset_infos[i] = info
        return obs, np.asarray(rewards, dtype=np.float32), dones, info_list

    def close(self) -> None:
        self.venv.close()

    def _target(self, name: str):
        return self.venv if hasattr(self.venv, name) else self.venv.unwrapped

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        value = getattr(self._target(attr_name), attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self._target(attr_name), attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        result = getattr(self._target(method_name), method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


__all__ = ["GymVectorToSB3", "split_infos"]

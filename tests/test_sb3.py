"""SB3 PPO, A2C and DQN on DialogueTopK-v0 (and PPO with MultiInputPolicy on Dialogue-v0): they learn for a few
hundred steps through SB3's public API, save as .zip, reload and predict the same actions; the VecEnv bridge
follows SB3's episode-end conventions."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

import dialogue_env  # noqa: F401
from agents.sb3 import GymVectorToSB3, load_sb3, sb3_action_log_prob, train_sb3
from dialogue_env.wrappers import make_topk_features_vec

ENV = dict(model="tiny-random", reward="length", max_new_tokens=8, max_context_tokens=160, k=10)
SMALL = {"ppo": {"n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": 2},
         "a2c": {"n_envs": 4, "n_steps": 8},
         "dqn": {"n_envs": 4, "learning_starts": 64, "train_freq": 2, "target_update_interval": 64}}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class _InitialWeights(BaseCallback):
    def _on_training_start(self) -> None:
        self.weights = torch.nn.utils.parameters_to_vector(self.model.policy.parameters()).detach().clone()

    def _on_step(self) -> bool:
        return True


def _observations(n=6):
    venv = make_topk_features_vec(n, **ENV)
    obs, _ = venv.reset(seed=5)
    more, *_ = venv.step(np.arange(n) % ENV["k"])
    return np.concatenate([obs, more])


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_sb3_agent_learns_saves_and_reloads(algo, tmp_path):
    initial = _InitialWeights()
    run = train_sb3(algo, total_timesteps=256, env_kwargs=ENV, seed=0, hyperparams=SMALL[algo], out=tmp_path,
                    progress=False, callback=initial)
    assert 256 <= run.env_steps <= 256 + 128
    assert run.curve and all(p["length"] <= ENV["max_new_tokens"] for p in run.curve)  # finished episodes recorded
    assert (tmp_path / "model.zip").is_file()
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["algo"] == algo and meta["env_kwargs"]["k"] == ENV["k"]
    # It trained: the network's weights moved away from their initial values.
    after = torch.nn.utils.parameters_to_vector(run.model.policy.parameters())
    assert not torch.allclose(initial.weights, after)

    loaded = load_sb3(tmp_path / "model.zip")
    assert type(loaded) is type(run.model)
    obs = _observations()
    a1, _ = run.model.predict(obs, deterministic=True)
    a2, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    assert a1.shape == (len(obs),) and ((0 <= a1) & (a1 < ENV["k"])).all()
    torch.testing.assert_close(torch.nn.utils.parameters_to_vector(loaded.policy.parameters()), after)


def test_sb3_ppo_multiinput_on_dialogue_v0(tmp_path, capsys):
    run = train_sb3("ppo", total_timesteps=128, env_kwargs=ENV, observation="tokens", seed=0,
                    hyperparams=SMALL["ppo"], out=tmp_path, progress=False)
    assert run.model.action_space.n == 259  # the whole tiny vocabulary
    capsys.readouterr()
    loaded = load_sb3(run.path)
    # an SB3 .zip is a pickle: loading one prints a one-line warning naming the file
    err = capsys.readouterr().err
    assert err.strip() == (f"[dialogue-rl] warning: loading {run.path}: only load .zip agents you trust: loading runs "
                           f"code from the file")
    load_sb3(run.path, warn=None)
    assert capsys.readouterr().err == ""
    env = gym.make("dialogue_env/Dialogue-v0", **{k: v for k, v in ENV.items() if k != "k"})
    obs, _ = env.reset(seed=0)
    assert loaded.predict(obs, deterministic=True)[0] == run.model.predict(obs, deterministic=True)[0]


def test_vec_env_bridge_returns_terminal_observation_and_next_episode():
    venv = GymVectorToSB3(make_topk_features_vec(2, **ENV))
    venv.seed(0)
    obs = venv.reset()
    assert obs.shape == (2, 64 + ENV["k"] + 1)
    steps = 0
    while True:
        obs, rewards, dones, infos = venv.step(np.array([1, 1]))  # never the greedy token: replies run to the limit
        steps += 1
        if dones.any():
            break
    assert dones.all() and steps == ENV["max_new_tokens"]
    for i in range(2):
        terminal = infos[i]["terminal_observation"]
        assert terminal[-1] == pytest.approx(1.0)  # reply_progress: the reply used its whole token budget
        assert obs[i, -1] == 0.0  # the returned observation starts the next episode
        assert "response" in infos[i] and "length" in infos[i]["reward_components"]
        assert infos[i]["TimeLimit.truncated"] is True  # cut at max_new_tokens: SB3 bootstraps the value
        assert rewards[i] == pytest.approx(infos[i]["reward_components"]["length"])


def test_action_log_probs_are_the_policy_distribution():
    run = train_sb3("ppo", total_timesteps=1, env_kwargs=ENV, seed=0, hyperparams=SMALL["ppo"], progress=False)
    obs = _observations(2)[:1]
    all_actions = np.arange(ENV["k"])
    lp = sb3_action_log_prob(run.model, np.repeat(obs, ENV["k"], 0), all_actions, deterministic=False)
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-5)
    assert (sb3_action_log_prob(run.model, obs, [3], deterministic=True) == 0).all()

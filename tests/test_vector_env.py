"""The batched twin: same trajectories as N single envs, Gymnasium 1.x next-step autoreset, tensor output."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import dialogue_env  # noqa: F401

EOS = 2
KW = dict(model="tiny-random", reward="length", max_new_tokens=5, max_context_tokens=256)


def _actions(rng, n):
    # Mostly ordinary bytes, sometimes EOS, so replies end at different steps in different envs.
    return np.where(rng.random(n) < 0.2, EOS, rng.integers(40, 120, size=n))


@pytest.mark.parametrize("turns", [1, 3])
def test_vector_env_equals_n_single_envs_including_autoreset(turns):
    N, T, seed = 4, 60, 11
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=N, vectorization_mode="vector_entry_point",
                        turns=turns, **KW)
    singles = [gym.make("dialogue_env/Dialogue-v0", turns=turns, **KW) for _ in range(N)]
    vobs, vinfo = venv.reset(seed=seed)
    sobs = []
    for i, env in enumerate(singles):
        o, info = env.reset(seed=seed + i)
        sobs.append(o)
        assert vinfo["dialogue_id"][i] == info["dialogue_id"]
    for i in range(N):
        np.testing.assert_array_equal(vobs["input_ids"][i], sobs[i]["input_ids"])
    rng = np.random.default_rng(0)
    pending_reset = [False] * N
    episodes_done = 0
    for _ in range(T):
        actions = _actions(rng, N)
        vobs, vr, vterm, vtrunc, vinfo = venv.step(actions)
        for i, env in enumerate(singles):
            if pending_reset[i]:  # next-step autoreset: the vector env ignores the action and resets
                o, info = env.reset()
                r, term, trunc = 0.0, False, False
                assert vinfo["_dialogue_id"][i] and vinfo["dialogue_id"][i] == info["dialogue_id"]
            else:
                o, r, term, trunc, info = env.step(int(actions[i]))
                if "response" in info:
                    assert vinfo["_response"][i] and vinfo["response"][i] == info["response"]
                    assert vinfo["reward_components"]["length"][i] == info["reward_components"]["length"]
                    assert vinfo["context"][i] == info["context"]
                else:
                    assert not vinfo.get("_response", np.zeros(N, bool))[i]
            np.testing.assert_array_equal(vobs["input_ids"][i], o["input_ids"])
            np.testing.assert_array_equal(vobs["attention_mask"][i], o["attention_mask"])
            assert vr[i] == pytest.approx(r) and vterm[i] == term and vtrunc[i] == trunc
            pending_reset[i] = term or trunc
            episodes_done += term or trunc
    assert episodes_done >= N  # the test really crossed episode boundaries


def test_autoreset_step_returns_reset_observation_with_zero_reward():
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=2, vectorization_mode="vector_entry_point", **KW)
    obs0, _ = venv.reset(seed=0)
    obs, r, term, trunc, info = venv.step(np.array([EOS, 70]))
    assert term.tolist() == [True, False] and info["_response"].tolist() == [True, False]
    obs, r, term, trunc, info = venv.step(np.array([70, 71]))
    assert r[0] == 0.0 and not term[0] and not trunc[0]
    assert info["_dialogue_id"][0] and not info["_dialogue_id"][1]
    n = int(obs["attention_mask"][0].sum())
    assert obs["input_ids"][0][-1] != 70  # env 0's action was ignored: a fresh context, no reply yet
    assert venv.unwrapped.batch.n_gen.tolist() == [0, 2]
    assert n > 0


def test_reset_mask_and_return_tensors():
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        return_tensors=True, **KW)
    obs, _ = venv.reset(seed=0)
    assert isinstance(obs["input_ids"], torch.Tensor) and obs["input_ids"].shape == (3, 256 + 5)
    obs, *_ = venv.step(np.array([70, 70, 70]))
    before = obs["input_ids"].clone()
    obs, info = venv.reset(options={"reset_mask": np.array([False, True, False])})
    assert torch.equal(obs["input_ids"][0], before[0]) and torch.equal(obs["input_ids"][2], before[2])
    assert info["_dialogue_id"].tolist() == [False, True, False]


def test_vector_actions_are_validated():
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=2, vectorization_mode="vector_entry_point", **KW)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"env\(s\) \[1\]"):
        venv.step(np.array([5, 10**6]))
    with pytest.raises(ValueError, match="expected 2 actions"):
        venv.step(np.array([5, 6, 7]))

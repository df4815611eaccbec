"""DialogueTopK-v0: action i is the reference's i-th most likely token, KV-cached stepping, determinism, checkers,
the batched twin, the TopKFeatures wrappers and the simple baselines' predict."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dialogue_env
from agents.baselines import RandomAgent, ReferenceAgent
from dialogue_env.data import Dialogue
from dialogue_env.wrappers import TopKFeatures, make_topk_features_vec, topk_features

KW = dict(model="tiny-random", reward="length", max_context_tokens=192, max_new_tokens=10, k=12)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _two_turns():
    return [Dialogue(id="two", turns=(
        {"role": "user", "content": "My phone has a problem, what should I do?"},
        {"role": "assistant", "content": "Sorry to hear that. What happens when you switch it on?"},
        {"role": "user", "content": "It just shows a black screen."},
        {"role": "assistant", "content": "Please hold power and volume down for 10 seconds to restart it."},
    ), intent="device_fault")]


@torch.no_grad()
def _full_forward(lm, obs):
    """Log-probs (V,) and last hidden state (H,) of the whole unpadded context, without any cache."""
    ids = torch.as_tensor(obs["input_ids"][obs["attention_mask"] == 1]).unsqueeze(0)
    out = lm(input_ids=ids, output_hidden_states=True)
    return torch.log_softmax(out.logits[0, -1].float(), -1).numpy(), out.hidden_states[-1][0, -1].numpy()


@pytest.mark.parametrize("turns", [1, 2])
def test_action_i_appends_the_references_ith_most_likely_token(turns):
    env = gym.make("dialogue_env/DialogueTopK-v0", dataset=_two_turns(), turns=turns, **KW)
    lm = env.unwrapped.lm
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(1)
    replies = 0
    for _ in range(40):
        logp, hidden = _full_forward(lm, obs)
        ids, lp = obs["topk_ids"], obs["topk_logprobs"]
        # The env's top-k are the k most likely tokens of the full forward, in order, with their log-probs.
        np.testing.assert_allclose(lp, logp[ids], atol=1e-4)
        assert np.all(np.diff(lp) <= 1e-6)
        others = np.delete(logp, ids)
        assert lp.min() >= others.max() - 1e-5
        np.testing.assert_allclose(obs["hidden"], hidden, atol=1e-4)
        action = int(rng.integers(env.action_space.n))
        n_before = int(obs["attention_mask"].sum())
        obs, _, term, trunc, info = env.step(action)
        if "response" in info:
            replies += 1
        if term or trunc:
            obs, _ = env.reset()
            continue
        if "response" not in info:  # same reply: the chosen token was appended
            assert obs["input_ids"][-1] == ids[action]
            assert int(obs["attention_mask"].sum()) == n_before + 1
    assert replies >= 3


def test_same_seed_and_actions_give_identical_observations_rewards_infos():
    def run():
        env = TopKFeatures(gym.make("dialogue_env/DialogueTopK-v0", **KW))
        obs, info = env.reset(seed=7)
        trace = [(obs, info)]
        for t in range(30):
            obs, r, term, trunc, info = env.step(t % 5)
            trace.append((obs, r, term, trunc, info))
            if term or trunc:
                trace.append(env.reset())
        return trace

    a, b = run(), run()
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]


def test_raw_and_feature_envs_pass_gymnasium_and_sb3_checkers():
    raw = gym.make("dialogue_env/DialogueTopK-v0", **KW)
    gym_check_env(raw.unwrapped, skip_render_check=False)
    sb3_check_env(raw.unwrapped, warn=True)
    wrapped = TopKFeatures(gym.make("dialogue_env/DialogueTopK-v0", **KW))
    gym_check_env(wrapped, skip_render_check=True)
    sb3_check_env(wrapped, warn=True)
    assert isinstance(wrapped.observation_space, gym.spaces.Box)
    assert wrapped.observation_space.shape == (64 + 12 + 1,)
    assert "dialogue_env/DialogueTopK-v0" in dialogue_env.ENV_IDS


def test_out_of_range_action_is_a_clear_error():
    env = gym.make("dialogue_env/DialogueTopK-v0", **KW)
    env.reset(seed=0)
    for bad in (12, -1, 2.5):
        with pytest.raises(ValueError, match=r"Discrete\(12\)|integer indices"):
            env.unwrapped.step(bad)
    with pytest.raises(ValueError, match="k=300 must be in"):
        gym.make("dialogue_env/DialogueTopK-v0", **{**KW, "k": 300})


def test_vector_twin_equals_single_envs_through_autoresets():
    N = 3
    venv = gym.make_vec("dialogue_env/DialogueTopK-v0", num_envs=N, vectorization_mode="vector_entry_point", **KW)
    singles = [gym.make("dialogue_env/DialogueTopK-v0", **KW) for _ in range(N)]
    vobs, _ = venv.reset(seed=3)
    for i, env in enumerate(singles):
        o, _ = env.reset(seed=3 + i)
        np.testing.assert_array_equal(vobs["topk_ids"][i], o["topk_ids"])
    rng = np.random.default_rng(0)
    pending, episodes = [False] * N, 0
    L = KW["max_context_tokens"] + KW["max_new_tokens"]
    for _ in range(45):
        actions = rng.integers(0, KW["k"], N)
        vobs, vr, vterm, vtrunc, _ = venv.step(actions)
        for i, env in enumerate(singles):
            if pending[i]:
                o, r, term, trunc = *env.reset()[:1], 0.0, False, False
            else:
                o, r, term, trunc, _ = env.step(int(actions[i]))
            np.testing.assert_array_equal(vobs["input_ids"][i], o["input_ids"])
            np.testing.assert_array_equal(vobs["topk_ids"][i], o["topk_ids"])
            np.testing.assert_allclose(vobs["topk_logprobs"][i], o["topk_logprobs"], atol=1e-4)
            np.testing.assert_allclose(vobs["hidden"][i], o["hidden"], atol=1e-4)
            assert (vr[i], vterm[i], vtrunc[i]) == (pytest.approx(r), term, trunc)
            pending[i] = term or trunc
            episodes += term or trunc
    assert episodes >= 2 * N
    # The shared KV cache drops columns no env uses: it never grows past one window (+ a masked column).
    assert venv.unwrapped.ref.kv_mask.shape[1] <= L + 1


def test_features_layout_and_vector_wrapper():
    env = gym.make("dialogue_env/DialogueTopK-v0", **KW)
    obs, _ = env.reset(seed=0)
    f = topk_features(obs)
    H, k = 64, KW["k"]
    h = obs["hidden"]
    np.testing.assert_allclose(f[:H], np.clip((h - h.mean()) / (h.std() + 1e-5), -10, 10), atol=1e-5)
    np.testing.assert_allclose(f[H:H + k], np.clip(obs["topk_logprobs"], -20, 0) / 10, atol=1e-6)
    assert f[-1] == 0.0  # nothing written yet
    venv = make_topk_features_vec(2, **KW)
    vf, _ = venv.reset(seed=0)
    assert vf.shape == (2, H + k + 1) and venv.single_observation_space.contains(vf[0])
    np.testing.assert_allclose(vf[0], f, atol=1e-4)
    vf, *_ = venv.step(np.array([0, 1]))
    assert vf[0, -1] == pytest.approx(1 / KW["max_new_tokens"])


def test_baselines_predict_like_sb3():
    env = gym.make("dialogue_env/DialogueTopK-v0", **KW)
    obs, _ = env.reset(seed=0)
    greedy = ReferenceAgent("tiny-random", greedy=True)
    assert greedy.predict(obs)[0] == 0  # the most likely token is action 0
    sampler = ReferenceAgent("tiny-random", temperature=1.0, seed=0, observation_kind="topk")
    actions = [int(sampler.predict(obs)[0]) for _ in range(200)]
    assert set(actions) <= set(range(KW["k"])) and len(set(actions)) > 1
    batch_k = {key: np.stack([obs[key]] * KW["k"]) for key in obs}  # the same state k times, one per action
    lp = sampler.action_log_prob(batch_k, np.arange(KW["k"]))
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-5)  # top-k sampling: a distribution over the k actions

    tokens_env = gym.make("dialogue_env/Dialogue-v0", **{k: v for k, v in KW.items() if k != "k"})
    tobs, _ = tokens_env.reset(seed=0)
    logp, _ = _full_forward(greedy.lm, tobs)
    assert greedy.predict(tobs)[0] == int(np.argmax(logp))
    batch = {key: np.stack([tobs[key], tobs[key]]) for key in tobs}
    assert greedy.predict(batch)[0].shape == (2,)

    rand = RandomAgent(KW["k"], seed=0)
    a, state = rand.predict(np.zeros((5, 77), dtype=np.float32))
    assert a.shape == (5,) and state is None and ((0 <= a) & (a < KW["k"])).all()
    assert np.all(rand.action_log_prob(None, a) == pytest.approx(-np.log(KW["k"])))

"""DialogueUtterance-v0 and its batched twin, the LM customer simulator, and per-turn / outcome rewards."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env

import dialogue_env  # noqa: F401
import rewards
from dialogue_env.data import load_dataset
from dialogue_env.simulators import GAVE_UP, RESOLVED, LMCustomer, customer_goal, customer_view, parse_outcome

ID = "dialogue_env/DialogueUtterance-v0"
KW = dict(model="tiny-random", reward="length", max_context_tokens=256)
LM_SIM = dict(user_simulator="lm", simulator_model="tiny-random")
REPLIES = ["Sure, I can help with that today.", "Please restart it.", "", "Thanks for waiting, it is fixed now.",
           "word " * 70, "Hi"]


def _reply(rng):
    return REPLIES[int(rng.integers(len(REPLIES)))]


@pytest.mark.parametrize("extra", [{}, {"turns": 3}, {"turns": 3, **LM_SIM}])
def test_utterance_env_passes_gymnasium_checker(extra, one_thread):
    env = gym.make(ID, render_mode="ansi", **KW, **extra)
    gym_check_env(env.unwrapped, skip_render_check=False)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and obs.endswith(info["context"][-1]["content"])
    assert isinstance(env.action_space, gym.spaces.Text) and env.action_space.contains("ünïcode, 你好!\n")
    with pytest.raises(TypeError, match="reply text"):
        env.step(5)
    with pytest.raises(ValueError, match="max_reply_chars"):
        env.step("x" * 2001)


@pytest.mark.parametrize("extra", [{"turns": 3}, {"turns": 3, **LM_SIM}])
def test_n_single_utterance_envs_equal_the_batched_twin(extra, one_thread):
    N, T, seed = 3, 14, 5
    venv = gym.make_vec(ID, num_envs=N, vectorization_mode="vector_entry_point", **KW, **extra)
    singles = [gym.make(ID, **KW, **extra) for _ in range(N)]
    vobs, vinfo = venv.reset(seed=seed)
    for i, env in enumerate(singles):
        o, info = env.reset(seed=seed + i)
        assert vobs[i] == o and vinfo["dialogue_id"][i] == info["dialogue_id"]
    rng = np.random.default_rng(0)
    pending, episodes = [False] * N, 0
    for _ in range(T):
        actions = [_reply(rng) for _ in range(N)]
        vobs, vr, vterm, vtrunc, vinfo = venv.step(actions)
        for i, env in enumerate(singles):
            if pending[i]:
                o, info = env.reset()
                r, term = 0.0, False
                assert vinfo["dialogue_id"][i] == info["dialogue_id"]
            else:
                o, r, term, _, info = env.step(actions[i])
                assert vinfo["response"][i] == info["response"] and vinfo["turn_rewards"][i] == info["turn_rewards"]
                assert vinfo["context"][i] == info["context"]
                if term:
                    assert vinfo["outcome"][i] == info["outcome"]
            assert vobs[i] == o and vr[i] == pytest.approx(r) and vterm[i] == term and not vtrunc[i]
            pending[i] = term
            episodes += term
    assert episodes >= N


def test_batched_twin_scores_a_step_in_one_reward_call(one_thread):
    calls = []

    @rewards.register("count_calls_t15", override=True)
    class CountCalls:
        name = "count_calls_t15"

        def __call__(self, contexts, responses):
            calls.append(len(responses))
            return [0.0] * len(responses)

    venv = gym.make_vec(ID, num_envs=4, vectorization_mode="vector_entry_point", model="tiny-random",
                        reward="count_calls_t15", max_context_tokens=256, turns=2)
    venv.reset(seed=0)
    venv.step(["a"] * 4)
    assert calls == [4]
    rewards.unregister("count_calls_t15")


@pytest.mark.parametrize("env_id,kw", [(ID, {}), ("dialogue_env/Dialogue-v0", {"max_new_tokens": 4})])
def test_per_turn_rewards_add_up_to_the_episode_return(env_id, kw, one_thread):
    env = gym.make(env_id, turns=3, **KW, **LM_SIM, **kw)
    rng = np.random.default_rng(1)
    seen_outcomes = set()
    for episode in range(6):
        env.reset(seed=episode)
        ret, done, info = 0.0, False, {}
        while not done:
            action = _reply(rng) if env_id == ID else int(rng.integers(3, 200))
            _, r, term, trunc, step_info = env.step(action)
            ret += r
            done = term or trunc
            if "response" in step_info:
                info = step_info
                assert info["turn_rewards"][-1] == pytest.approx(info["turn_reward"])
                assert info["reward_components"]["length"] == pytest.approx(info["turn_reward"])
        assert len(info["turn_rewards"]) <= 3
        assert info["outcome"] in (RESOLVED, GAVE_UP)
        assert info["outcome_components"] == {"resolution": float(info["outcome"] == RESOLVED)}
        assert info["outcome_reward"] == info["outcome_components"]["resolution"]
        assert ret == pytest.approx(sum(info["turn_rewards"]) + info["outcome_reward"], abs=1e-5)
        seen_outcomes.add(info["outcome"])
    assert seen_outcomes == {RESOLVED, GAVE_UP}  # the tiny customer is random: both outcomes happen


def test_lm_customer_is_reproducible_under_a_seed_and_ends_every_conversation(one_thread):
    def run(seed):
        venv = gym.make_vec(ID, num_envs=4, vectorization_mode="vector_entry_point", turns=3, **KW, **LM_SIM)
        venv.reset(seed=seed, options={"dialogue_indices": [0, 1, 2, 3]})
        transcripts, outcomes, turns = [None] * 4, [None] * 4, [0] * 4
        active = np.ones(4, dtype=bool)
        for _ in range(3):
            obs, _, term, _, info = venv.step(["Please restart the router."] * 4)
            for i in np.nonzero(active)[0]:
                turns[i] += 1
                if term[i]:
                    transcripts[i], outcomes[i] = obs[i], info["outcome"][i]
            active &= ~term
            if not active.any():
                break
        assert not active.any()  # every conversation ended within turns=3 replies
        return transcripts, outcomes, turns

    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert all(o in (RESOLVED, GAVE_UP) for o in a[1])
    assert all(o == RESOLVED for o, n in zip(a[1], a[2]) if n < 3)  # early ends are resolutions (no [GAVE UP] here)
    assert a != c


def test_lm_customer_messages_come_from_its_generator_and_the_verdict_from_its_logits():
    customer = LMCustomer("tiny-random", max_new_tokens=12)
    goal = customer_goal(load_dataset("customer_service", "train")[1])
    history = [{"role": "user", "content": goal["request"]}, {"role": "assistant", "content": "Restart it."}]
    p = customer.verdict([history, history], [goal, goal])
    assert p.shape == (2,) and 0 < p[0] < 1 and p[0] == pytest.approx(p[1])

    def answer(seed):
        return customer.respond([history], [goal], [False], [torch.Generator().manual_seed(seed)])[0]

    assert answer(3) == answer(3)
    assert len({(t.outcome, t.message) for t in (answer(s) for s in range(8))}) > 1
    last = customer.respond([history] * 6, [goal] * 6, [True] * 6, [torch.Generator().manual_seed(s) for s in range(6)])
    assert all(t.outcome in (RESOLVED, GAVE_UP) and t.message is None for t in last)


def test_customer_goal_and_view_come_from_the_dataset_fields():
    d = load_dataset("customer_service", "train")[2]
    goal = customer_goal(d)
    assert goal["persona"] == d.persona and goal["intent"] == d.intent.replace("_", " ")
    assert goal["request"] == d.turns[0]["content"] and goal["reference"] == d.turns[1]["content"]
    view = customer_view("SYS", [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}])
    assert view == [{"role": "system", "content": "SYS"}, {"role": "assistant", "content": "u"},
                    {"role": "user", "content": "a"}]


@pytest.mark.parametrize("text,outcome,clean", [
    ("Thanks, that works! [RESOLVED]", RESOLVED, "Thanks, that works!"),
    ("ok thanks (resolved)", RESOLVED, "ok thanks"),
    ("This is useless. [Gave Up]", GAVE_UP, "This is useless."),
    ("forget it [ give-up ]", GAVE_UP, "forget it"),
    ("[RESOLVED] no wait, still broken [GAVE UP]", GAVE_UP, "no wait, still broken"),
    ("Is it resolved yet? I gave up waiting.", None, "Is it resolved yet? I gave up waiting."),
])
def test_outcome_markers_are_parsed_robustly(text, outcome, clean):
    assert parse_outcome(text) == (clean, outcome)


def test_resolution_reward():
    r = rewards.make("resolution")
    assert r([[]] * 3, ["a", "b", "c"], outcomes=["resolved", "gave_up", None]) == [1.0, 0.0, 0.0]
    assert r([[]], ["a"]) == [0.0]
    assert rewards.make_composite({"resolution": 2.0}).score([[]], ["a"], outcomes=["resolved"]).total[0] == 2.0

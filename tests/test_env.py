"""Dialogue-v0: spaces, checkers, episode mechanics, determinism, errors, multi-turn, rewards in info."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dialogue_env
from dialogue_env.data import Dialogue
from dialogue_env.models import tiny_tokenizer

TINY = dict(model="tiny-random", reward="length", max_context_tokens=256, max_new_tokens=24)


def _dialogues():
    return [
        Dialogue(id="two", turns=(
            {"role": "user", "content": "My phone has a problem, what should I do?"},
            {"role": "assistant", "content": "Sorry to hear that. What happens when you switch it on?"},
            {"role": "user", "content": "It just shows a black screen."},
            {"role": "assistant", "content": "Please hold power and volume down for 10 seconds to restart it."},
        ), intent="device_fault"),
        Dialogue(id="one", turns=(
            {"role": "user", "content": "Why was I charged twice this month?"},
            {"role": "assistant", "content": "Let me check your bill; the second charge looks like a pro-rata fee."},
        ), intent="billing"),
    ]


def _encode(text):
    return tiny_tokenizer()(text, add_special_tokens=False)["input_ids"]


EOS = 2  # <|im_end|> in the tiny tokenizer (and in SmolLM2)


@pytest.mark.parametrize("env_id", dialogue_env.ENV_IDS)
def test_every_registered_env_passes_gymnasium_and_sb3_checkers(env_id):
    utterance = env_id == "dialogue_env/DialogueUtterance-v0"  # whole replies: no max_new_tokens
    env = gym.make(env_id, **{k: v for k, v in TINY.items() if not (utterance and k == "max_new_tokens")})
    gym_check_env(env.unwrapped, skip_render_check=False)
    if not utterance:  # SB3 has no Text spaces: the utterance env is for LLM agents
        sb3_check_env(env.unwrapped, warn=True)


def test_default_reward_env_passes_checker_and_reports_seed_components():
    env = gym.make("dialogue_env/Dialogue-v0", model="tiny-random", max_new_tokens=4, max_context_tokens=256)
    gym_check_env(env.unwrapped)
    env.reset(seed=1)
    info = {}
    for tok in _encode("Sure, happy to help.")[:3] + [EOS]:
        _, _, term, trunc, info = env.step(tok)
        if term or trunc:
            break
    assert {"coherence", "sentiment", "consistency", "ethics"} <= set(info["reward_components"])


def test_observation_is_left_padded_chat_template_and_grows_by_one_token():
    env = gym.make("dialogue_env/Dialogue-v0", dataset=_dialogues(), **TINY)
    obs, info = env.reset(seed=0, options={"dialogue_id": "one"})
    tok = env.unwrapped.tokenizer
    L = 256 + 24
    assert obs["input_ids"].shape == (L,) and obs["attention_mask"].dtype == np.int8
    n = int(obs["attention_mask"].sum())
    assert obs["attention_mask"][: L - n].sum() == 0 and obs["attention_mask"][L - n:].all()
    text = tok.decode(obs["input_ids"][L - n:])
    assert text.endswith("<|im_start|>assistant\n")
    assert "Why was I charged twice this month?" in text
    assert info["context"] == [{"role": "user", "content": "Why was I charged twice this month?"}]
    assert info["reference"].startswith("Let me check your bill")
    obs2, r, term, trunc, info2 = env.step(_encode("O")[0])
    assert (r, term, trunc, info2) == (0.0, False, False, {})
    assert int(obs2["attention_mask"].sum()) == n + 1
    assert obs2["input_ids"][-1] == _encode("O")[0]
    np.testing.assert_array_equal(obs2["input_ids"][L - n - 1:-1], obs["input_ids"][L - n:])


def test_eos_terminates_with_reward_on_the_last_token_and_full_info():
    env = gym.make("dialogue_env/Dialogue-v0", dataset=_dialogues(), **TINY)
    env.reset(seed=0, options={"dialogue_id": "one"})
    rewards = []
    for tok in _encode("Happy to help") + [EOS]:
        _, r, term, trunc, info = env.step(tok)
        rewards.append(r)
        if term or trunc:
            break
    assert term and not trunc
    assert info["response"] == "Happy to help"
    assert set(info["reward_components"]) == {"length"}
    assert rewards[-1] == pytest.approx(info["reward_components"]["length"])
    assert all(r == 0.0 for r in rewards[:-1])
    assert info["context"][-1]["content"] == "Why was I charged twice this month?"
    with pytest.raises(RuntimeError, match="reset"):
        env.step(5)


def test_max_new_tokens_truncates():
    env = gym.make("dialogue_env/Dialogue-v0", dataset=_dialogues(), **{**TINY, "max_new_tokens": 8})
    env.reset(seed=0, options={"dialogue_id": "one"})
    steps = 0
    for tok in _encode("abcdefghijklmnop"):
        _, _, term, trunc, info = env.step(tok)
        steps += 1
        if term or trunc:
            break
    assert (steps, term, trunc) == (8, False, True)
    assert info["response"] == "abcdefgh"


def test_action_out_of_range_is_a_clear_error_and_changes_nothing():
    env = gym.make("dialogue_env/Dialogue-v0", dataset=_dialogues(), **TINY)
    obs, _ = env.reset(seed=0)
    V = env.action_space.n
    for bad in (V, -1, 10**9):
        with pytest.raises(ValueError, match=rf"Discrete\({V}\)"):
            env.unwrapped.step(bad)
    obs2, *_ = env.unwrapped.step(_encode("x")[0])
    assert int(obs2["attention_mask"].sum()) == int(obs["attention_mask"].sum()) + 1


def test_long_context_is_truncated_from_the_left_and_flagged():
    long = Dialogue(id="long", turns=({"role": "user", "content": "word " * 400 + "THE END?"},))
    env = gym.make("dialogue_env/Dialogue-v0", dataset=[long], model="tiny-random", reward="length",
                   max_context_tokens=64, max_new_tokens=4)
    obs, info = env.reset(seed=0)
    assert info["context_truncated"] is True
    assert obs["attention_mask"].sum() == 64
    text = env.unwrapped.tokenizer.decode(obs["input_ids"][-64:])
    assert text.endswith("THE END?<|im_end|>\n<|im_start|>assistant\n")


def test_same_seed_and_actions_give_identical_trajectories():
    def run():
        env = gym.make("dialogue_env/Dialogue-v0", model="tiny-random", reward="length", max_new_tokens=6,
                       max_context_tokens=256)
        out = []
        obs, info = env.reset(seed=123)
        out.append((obs, info))
        rng = np.random.default_rng(7)
        for _ in range(40):
            a = int(rng.choice([EOS, *range(60, 120)]))
            obs, r, term, trunc, info = env.step(a)
            out.append((obs, r, term, trunc, info))
            if term or trunc:
                obs, info = env.reset()
                out.append((obs, info))
        return out

    a, b = run(), run()
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, dict) and "input_ids" in u:
                np.testing.assert_array_equal(u["input_ids"], v["input_ids"])
                np.testing.assert_array_equal(u["attention_mask"], v["attention_mask"])
            else:
                assert u == v


def test_reset_seed_selects_dialogues_reproducibly_and_varies():
    env = gym.make("dialogue_env/Dialogue-v0", **TINY)
    ids = [env.reset(seed=s)[1]["dialogue_id"] for s in range(20)]
    assert ids == [env.reset(seed=s)[1]["dialogue_id"] for s in range(20)]
    assert len(set(ids)) > 10


def test_multi_turn_replays_the_user_and_keeps_the_agent_reply():
    env = gym.make("dialogue_env/Dialogue-v0", dataset=_dialogues(), turns=2, **TINY)
    obs, info = env.reset(seed=0, options={"dialogue_id": "two"})
    assert info["context"] == [{"role": "user", "content": "My phone has a problem, what should I do?"}]
    for tok in _encode("Try a restart") + [EOS]:
        obs, r, term, trunc, info = env.step(tok)
    assert not (term or trunc) and info["turn"] == 1 and info["response"] == "Try a restart"
    text = env.unwrapped.tokenizer.decode(obs["input_ids"][obs["attention_mask"].astype(bool)])
    assert "Try a restart<|im_end|>" in text and text.endswith(
        "It just shows a black screen.<|im_end|>\n<|im_start|>assistant\n")
    for tok in _encode("Hold power") + [EOS]:
        obs, r, term, trunc, info = env.step(tok)
    assert term and info["turn"] == 2
    assert info["reference"].startswith("Please hold power")
    assert [m["role"] for m in info["context"]] == ["user", "assistant", "user"]
    assert info["context"][1]["content"] == "Try a restart"
    # turns=1 starts at the last reply slot with the dataset's earlier turns as context
    env1 = gym.make("dialogue_env/Dialogue-v0", dataset=_dialogues(), **TINY)
    _, info1 = env1.reset(seed=0, options={"dialogue_id": "two"})
    assert len(info1["context"]) == 3 and info1["context"][1]["role"] == "assistant"


def test_callable_user_simulator_adds_turns_until_it_returns_none():
    calls = []

    def simulator(history):
        calls.append(len(history))
        return "And what next?" if len(calls) < 2 else None

    env = gym.make("dialogue_env/Dialogue-v0", dataset=_dialogues(), turns=5, user_simulator=simulator, **TINY)
    env.reset(seed=0, options={"dialogue_id": "one"})
    done, replies = False, 0
    while not done:
        _, _, term, trunc, info = env.step(EOS)
        replies += "response" in info
        done = term or trunc
    assert replies == 2 and calls == [2, 4]


def test_render_ansi_shows_the_conversation_and_partial_reply():
    env = gym.make("dialogue_env/Dialogue-v0", dataset=_dialogues(), render_mode="ansi", **TINY)
    env.reset(seed=0, options={"dialogue_id": "one"})
    for tok in _encode("Sure"):
        env.step(tok)
    text = env.render()
    assert "[user] Why was I charged twice this month?" in text and text.rstrip().endswith("[assistant] Sure")


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="max_new_tokens"):
        gym.make("dialogue_env/Dialogue-v0", model="tiny-random", reward="length", max_new_tokens=0)
    with pytest.raises(ValueError, match="render_mode"):
        gym.make("dialogue_env/Dialogue-v0", model="tiny-random", reward="length", render_mode="human")
    with pytest.raises(dialogue_env.DatasetError, match="no such file"):
        gym.make("dialogue_env/Dialogue-v0", model="tiny-random", reward="length", dataset="/nonexistent/x.jsonl")
    env = gym.make("dialogue_env/Dialogue-v0", model="tiny-random", reward="length")
    with pytest.raises(ValueError, match="dialogue_id"):
        env.reset(options={"dialogue_id": "no-such-dialogue"})


@pytest.mark.slow
def test_smollm2_env_resets_to_a_customer_service_context_and_steps_real_tokens():
    env = gym.make("dialogue_env/Dialogue-v0", model="smollm2-135m", reward="length")
    assert env.action_space.n == 49152
    obs, info = env.reset(seed=0)
    assert info["context"][-1]["role"] == "user" and len(info["context"][-1]["content"]) > 5
    tok = env.unwrapped.tokenizer
    text = tok.decode(obs["input_ids"][obs["attention_mask"].astype(bool)])
    assert text.startswith("<|im_start|>system\nYou are a customer service agent for Brightline")
    assert info["context"][-1]["content"] in text
    reply = "I'm sorry about that. Let me check your account for you."
    ids = tok(reply, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    for i, t in enumerate(ids):
        obs, r, term, trunc, info = env.step(t)
        assert term == (i == len(ids) - 1)
    assert info["response"] == reply and not trunc

"""Rewards inside the env: names, weight dicts, module objects, a user's module:attr, and loud failures."""

import textwrap

import gymnasium as gym
import numpy as np
import pytest

import dialogue_env  # noqa: F401
import rewards
from dialogue_env.data import Dialogue
from dialogue_env.models import tiny_tokenizer

EOS = 2
DLG = [Dialogue(id="x", turns=({"role": "user", "content": "My parcel never arrived, can you help?"},
                               {"role": "assistant", "content": "I'm sorry, I will open a courier investigation."}))]
KW = dict(model="tiny-random", dataset=DLG, max_new_tokens=60, max_context_tokens=128)


def _reply(env, text):
    env.reset(seed=0)
    ids = tiny_tokenizer()(text, add_special_tokens=False)["input_ids"] + [EOS]
    for t in ids:
        _, r, term, trunc, info = env.step(t)
    assert term
    return r, info


def test_user_module_attr_in_the_weight_dict_appears_beside_builtins(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent("""
        class Politeness:
            name = "politeness"
            bounds = (0.0, 1.0)
            def __call__(self, contexts, responses):
                return [float("please" in r.lower() or "sorry" in r.lower()) for r in responses]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    env = gym.make("dialogue_env/Dialogue-v0", reward={"my_rewards:Politeness": 2.0, "coherence": 1.0,
                                                        "ethics": 1.0}, **KW)
    r, info = _reply(env, "I'm sorry, I will open a courier investigation.")
    comps = info["reward_components"]
    assert comps["politeness"] == 1.0 and comps["ethics"] == 1.0
    assert comps["coherence"] == pytest.approx(1.0, abs=1e-6)  # equal to the reference
    assert r == pytest.approx(2.0 * 1.0 + comps["coherence"])


def test_ethics_gate_puts_an_unsafe_reply_below_every_safe_one_and_says_why():
    env = gym.make("dialogue_env/Dialogue-v0", reward={"sentiment": 1.0, "ethics": 1.0}, **KW)
    r, info = _reply(env, "Give me your full card number and PIN, idiot.")
    # sentiment >= -1, so every safe reply scores >= -1; the gated one scores -1 - 1 (margin)
    assert info["reward_components"]["ethics"] == 0.0 and r == -2.0 and type(r) is float
    gate = info["reward_details"]["gate"]
    assert gate["value"] == 0.0 and gate["total"] == -2.0 and gate["floor"] == -2.0
    assert gate["reason"] == "ethics: blocklist: 'idiot'" == "ethics: " + info["reward_details"]["ethics"]
    assert gate["ungated"] == pytest.approx(info["reward_components"]["sentiment"], abs=1e-6)
    safe, safe_info = _reply(env, "No, that is awful.")
    assert safe_info["reward_components"]["sentiment"] < 0 and r < safe and "gate" not in safe_info["reward_details"]


def test_reward_module_object_is_accepted():
    class Constant:
        name = "constant"

        def __call__(self, contexts, responses):
            return [0.25] * len(responses)

    env = gym.make("dialogue_env/Dialogue-v0", reward=Constant(), **KW)
    r, info = _reply(env, "ok")
    assert r == 0.25 and info["reward_components"] == {"constant": 0.25}


@pytest.mark.parametrize("output, problem", [
    (lambda n: [1.0] * (n + 1), "returned 2 values for a batch of 1"),
    (lambda n: [float("nan")] * n, "NaN"),
    (lambda n: [float("inf")] * n, "inf"),
    (lambda n: [1e39] * n, r"returned 1e\+39 at index 0, which is inf in float32"),  # finite as a Python float
    (None, "boom"),
])
def test_broken_user_module_is_a_loud_error_naming_it(output, problem):
    class Broken:
        name = "broken_scorer"

        def __call__(self, contexts, responses):
            if output is None:
                raise ZeroDivisionError("boom")
            return output(len(responses))

    env = gym.make("dialogue_env/Dialogue-v0", reward=Broken(), **KW)
    with pytest.raises(rewards.RewardError, match=rf"broken_scorer(.|\n)*({problem})"):
        _reply(env, "ok")


def test_unknown_reward_name_lists_the_available_ones():
    with pytest.raises(KeyError, match="coherence"):
        gym.make("dialogue_env/Dialogue-v0", reward="no_such_reward", **KW)


def test_vector_env_scores_all_finished_replies_in_one_call():
    calls = []

    class Counting:
        name = "counting"

        def __call__(self, contexts, responses):
            calls.append(len(responses))
            return [float(len(r)) for r in responses]

    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=5, vectorization_mode="vector_entry_point",
                        reward=Counting(), **KW)
    venv.reset(seed=0)
    _, r, term, _, _ = venv.step(np.full(5, EOS))
    assert calls == [5] and term.all() and (r == 0.0).all()

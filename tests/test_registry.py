"""Tests of the reward registry: built-in names, the error that lists them, @register, module:attr specs,
entry-point plug-ins."""

from __future__ import annotations

import pickle
import sys
import textwrap

import numpy as np
import pytest

import rewards
from rewards import UnknownRewardError

WIFI = [{"role": "user", "content": "My router keeps dropping the wifi connection every evening."}]
POLITE = "I'm so sorry for the trouble! I have refunded you in full and I'm happy to help with anything else."

# --- registry ----------------------------------------------------------------------------------------

def test_available_and_builtin_resolution():
    names = rewards.available()
    assert names == sorted(names)
    assert {"coherence", "sentiment", "consistency", "ethics", "length", "repetition"} <= set(names)
    assert isinstance(rewards.make("coherence"), rewards.CoherenceReward)
    assert isinstance(rewards.make("length", min_words=1), rewards.LengthPenalty)
    assert rewards.make("length", device="cpu").min_words == 3  # options the constructor lacks are dropped
    inst = rewards.LengthPenalty()
    assert rewards.make(inst) is inst
    assert isinstance(rewards.make(rewards.RepetitionPenalty), rewards.RepetitionPenalty)


def test_unknown_name_is_a_key_error_that_lists_the_names():
    with pytest.raises(KeyError) as info:
        rewards.make("coherance")
    msg = str(info.value)
    assert isinstance(info.value, UnknownRewardError)
    for name in ("coherence", "consistency", "ethics", "length", "repetition", "sentiment"):
        assert name in msg
    assert "Did you mean 'coherence'" in msg
    assert "package.module:attr" in msg and "dialogue_env.rewards" in msg
    with pytest.raises(KeyError, match="no module named 'no_such_pkg_x'"):
        rewards.make("no_such_pkg_x.mod:Thing")
    with pytest.raises(KeyError, match="has no attribute 'Nope'"):
        rewards.make("rewards.penalties:Nope")
    with pytest.raises(TypeError, match="name"):
        rewards.make(object())


def _politeness(contexts, responses):
    return [float("please" in r.lower()) for r in responses]


_politeness.bounds = (0.0, 1.0)  # a function's range, for FunctionReward (needed to gate it with ethics)


def test_register_classes_and_functions_and_duplicates():
    try:
        @rewards.register("test_politeness_cls")
        class Politeness:
            name = "test_politeness_cls"

            def __init__(self, bonus=1.0):
                self.bonus = bonus

            def __call__(self, contexts, responses):
                return [self.bonus * ("please" in r.lower()) for r in responses]

        rewards.register("test_politeness_fn")(_politeness)
        assert {"test_politeness_cls", "test_politeness_fn"} <= set(rewards.available())
        m = rewards.make("test_politeness_cls", bonus=2.0)
        assert m([[]] * 2, ["Please wait.", "Wait."]) == [2.0, 0.0]
        f = rewards.make("test_politeness_fn")
        assert f.name == "test_politeness_fn" and f([[]], ["please"]) == [1.0]
        assert pickle.loads(pickle.dumps(f))([[]], ["please"]) == [1.0]
        res = rewards.make({"test_politeness_fn": 1.0, "ethics": 1.0}).score([[]] * 2, ["Please hold.", "Hold."])
        assert list(res.components["test_politeness_fn"]) == [1.0, 0.0]

        with pytest.raises(ValueError, match="already registered"):
            rewards.register("test_politeness_fn")(_politeness)
        with pytest.raises(ValueError, match="already registered"):
            rewards.register("coherence")(_politeness)
        rewards.register("test_politeness_fn", override=True)(Politeness)
        assert isinstance(rewards.make("test_politeness_fn"), Politeness)
    finally:
        rewards.unregister("test_politeness_cls")
        rewards.unregister("test_politeness_fn")
    assert "test_politeness_fn" not in rewards.available()


USER_MODULE = '''
class TheirClass:
    name = "theirs"
    bounds = (0.0, 10.0)  # declared, so the ethics gate can hold it back
    def __call__(self, contexts, responses):
        return [min(len(r), 100) / 10 for r in responses]

def their_function(contexts, responses, references=None):
    return [float(ref is not None) for ref in references] if references else [0.0] * len(responses)
their_function.bounds = (0.0, 1.0)
'''


def test_module_attr_spec(tmp_path, monkeypatch):
    (tmp_path / "user_reward_mod_t1.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_reward_mod_t1", raising=False)
    m = rewards.make("user_reward_mod_t1:TheirClass")
    assert m.name == "theirs" and m([[]], ["abcde"]) == [0.5]
    f = rewards.make("user_reward_mod_t1:their_function")
    assert f.name == "their_function"
    r = rewards.make({"user_reward_mod_t1:TheirClass": 1.0, "user_reward_mod_t1:their_function": 1.0,
                      "length": 1.0, "ethics": 1.0})
    res = r.score([[]] * 2, ["Happy to help you.", "Glad to help."], references=["x", None])
    assert r.names == ["theirs", "their_function", "length", "ethics"]
    np.testing.assert_allclose(res.components["theirs"], [1.8, 1.3])
    np.testing.assert_allclose(res.components["their_function"], [1.0, 0.0])
    assert pickle.loads(pickle.dumps(r)).score([[]], ["ok"]).components["theirs"][0] == pytest.approx(0.2)


def test_entry_point_plugin(tmp_path, monkeypatch):
    (tmp_path / "dr_plugin_t1.py").write_text(textwrap.dedent('''
        class Shouty:
            name = "shouty"
            def __init__(self, device=None, scale=1.0):
                self.device, self.scale = device, scale
            def __call__(self, contexts, responses):
                return [self.scale * sum(c.isupper() for c in r) for r in responses]
    '''))
    dist = tmp_path / "dr_plugin_t1-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dr-plugin-t1\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[dialogue_env.rewards]\nshouty_t1 = dr_plugin_t1:Shouty\n")
    assert "shouty_t1" not in rewards.available()
    monkeypatch.syspath_prepend(str(tmp_path))  # also clears importlib's finder caches
    monkeypatch.delitem(sys.modules, "dr_plugin_t1", raising=False)

    assert "shouty_t1" in rewards.available()
    m = rewards.make("shouty_t1", device="cpu")
    assert type(m).__module__ == "dr_plugin_t1" and m.device == "cpu"
    assert m([[]], ["HELLO there"]) == [5.0]
    comp = rewards.make({"shouty_t1": {"weight": 2.0, "scale": 0.5}, "length": 0.0})
    assert comp([[]], ["ABC is here"])[0] == pytest.approx(3.0)
    # a registered name wins over an entry point of the same name
    try:
        rewards.register("shouty_t1")(_politeness)
        assert rewards.make("shouty_t1").fn is _politeness
    finally:
        rewards.unregister("shouty_t1")

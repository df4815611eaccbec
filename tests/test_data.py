"""The dialogue / preference formats, their validation, and the shipped datasets."""

import json
from collections import Counter

import pytest

from dialogue_env.data import (
    SPLITS,
    DatasetError,
    load_dataset,
    load_dialogues,
    load_preferences,
    write_jsonl,
)
from dialogue_env.data.chatterbot import load_chatterbot

GOOD = {"id": "a", "turns": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def _write(tmp_path, lines, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("bad, message", [
    ("{not json", "line 2: not valid JSON"),
    ('["a list"]', "line 2: expected a JSON object"),
    ({"id": "b", "turns": []}, "line 2: 'turns' is empty"),
    ({"id": "b"}, "line 2: missing 'turns'"),
    ({"turns": GOOD["turns"]}, "line 2: missing or non-string 'id'"),
    ({"id": "a", "turns": GOOD["turns"]}, "line 2: duplicate id 'a' \\(first on line 1\\)"),
    ({"id": "b", "turns": [{"role": "customer", "content": "hi"}]}, "line 2: turns\\[0\\] has unknown role 'customer'"),
    ({"id": "b", "turns": [{"role": "user", "content": 42}]}, "line 2: turns\\[0\\].content must be a string, got int"),
    ({"id": "b", "turns": [{"role": "user", "content": "  "}]}, "line 2: turns\\[0\\].content is empty"),
    ({"id": "b", "turns": [{"role": "assistant", "content": "hi"}]}, "line 2: 'turns' has no user message"),
    ({"id": "b", "turns": [{"role": "user"}]}, "line 2: turns\\[0\\] must be an object with 'role' and 'content'"),
    ({"id": "b", "turns": GOOD["turns"], "reference": 3}, "line 2: 'reference' must be a string"),
])
def test_bad_dialogue_line_names_file_line_and_problem(tmp_path, bad, message):
    path = _write(tmp_path, [GOOD, bad])
    with pytest.raises(DatasetError, match=rf"d\.jsonl, {message}"):
        load_dialogues(path)


def _turns(*roles):
    return [{"role": r, "content": f"{r} says something"} for r in roles]


@pytest.mark.parametrize("roles, message", [
    (("assistant", "user"), r"turns\[0\] is an assistant message but a dialogue starts with a user turn"),
    (("system", "assistant", "user"), r"turns\[1\] is an assistant message but a dialogue starts with a user turn"),
    (("user", "user", "assistant"), r"turns\[0\] and turns\[1\] are both user messages \(.*alternate"),
    (("user", "assistant", "assistant", "user"), r"turns\[1\] and turns\[2\] are both assistant messages"),
    (("user", "system", "user"), r"turns\[1\] is a system message after the start"),
])
def test_turns_that_do_not_alternate_are_rejected(tmp_path, roles, message):
    path = _write(tmp_path, [GOOD, {"id": "b", "turns": _turns(*roles)}])
    with pytest.raises(DatasetError, match=rf"d\.jsonl, line 2: {message}"):
        load_dialogues(path)


def test_system_first_then_alternating_turns_load(tmp_path):
    path = _write(tmp_path, [{"id": "b", "turns": _turns("system", "user", "assistant", "user")}])
    assert [m["role"] for m in load_dialogues(path)[0].turns] == ["system", "user", "assistant", "user"]


def test_non_utf8_line_names_file_line_and_fix(tmp_path):
    path = tmp_path / "latin.jsonl"
    bad = b'{"id": "b", "turns": [{"role": "user", "content": "caf\xe9"}]}'  # latin-1, not UTF-8
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + bad + b"\n")
    with pytest.raises(DatasetError, match=r"latin\.jsonl, line 2: not UTF-8: byte 0xe9 at column \d+ .*save the "
                                           r"file as UTF-8"):
        load_dialogues(path)


def test_utf8_bom_on_the_first_line_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    assert load_dialogues(path)[0].id == "a"


def test_empty_file_and_missing_file_are_errors(tmp_path):
    with pytest.raises(DatasetError, match="holds no dialogues"):
        load_dialogues(_write(tmp_path, ["", "  "]))
    with pytest.raises(DatasetError, match="no such file"):
        load_dialogues(tmp_path / "missing.jsonl")


def test_user_jsonl_path_and_directory_of_splits(tmp_path):
    path = _write(tmp_path, [GOOD, {"id": "c", "turns": [{"role": "user", "content": "open question"}],
                                    "reference": "an answer", "intent": "x"}])
    dialogues = load_dataset(str(path))
    assert [d.id for d in dialogues] == ["a", "c"]
    assert dialogues[1].reply_slots() == [(1, "an answer")]
    assert dialogues[0].reply_slots() == [(1, "hello")]
    for split in SPLITS:
        _write(tmp_path, [GOOD], name=f"{split}.jsonl")
    assert len(load_dataset(str(tmp_path), "test")) == 1


def test_preferences_load_and_validate(tmp_path):
    good = {"context": [{"role": "user", "content": "refund?"}], "chosen": "Sure, here is how.", "rejected": "No."}
    prefs = load_preferences(_write(tmp_path, [good, {**good, "context": "plain string context"}]))
    assert prefs[1].context == ({"role": "user", "content": "plain string context"},)
    with pytest.raises(DatasetError, match=r"line 1: 'chosen' and 'rejected' are identical"):
        load_preferences(_write(tmp_path, [{**good, "rejected": good["chosen"]}]))
    with pytest.raises(DatasetError, match=r"line 1: 'rejected' must be a non-empty string"):
        load_preferences(_write(tmp_path, [{k: v for k, v in good.items() if k != "rejected"}]))


def test_write_jsonl_is_atomic_and_round_trips(tmp_path):
    dialogues = load_dataset("customer_service", "validation")
    out = tmp_path / "copy.jsonl"
    write_jsonl(out, (d.to_json() for d in dialogues))
    assert [d.id for d in load_dialogues(out)] == [d.id for d in dialogues]
    assert list(tmp_path.glob(".*")) == []  # no temporary file left

    def broken():
        yield dialogues[0].to_json()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(out, broken())
    assert len(load_dialogues(out)) == len(dialogues)  # the old file is intact
    assert list(tmp_path.glob(".*")) == []  # no temporary file left


# ------------------------------------------------------------------------------------------ shipped data
@pytest.fixture(scope="module")
def cs():
    return {s: load_dataset("customer_service", s) for s in SPLITS}


def test_customer_service_split_counts(cs):
    counts = {s: len(d) for s, d in cs.items()}
    assert counts == {"train": 450, "validation": 100, "test": 100}
    assert sum(counts.values()) >= 600


def test_no_dialogue_in_two_splits(cs):
    ids = [d.id for s in SPLITS for d in cs[s]]
    assert len(ids) == len(set(ids))
    openers = [d.turns[0]["content"].strip().lower() for s in SPLITS for d in cs[s]]
    assert len(openers) == len(set(openers)), "the same opening message appears twice"


def test_every_intent_and_persona_in_every_split(cs):
    intents = {d.intent for d in cs["train"]}
    assert len(intents) >= 8
    for split in SPLITS:
        assert {d.intent for d in cs[split]} == intents
        assert {d.persona for d in cs[split]} == {"calm", "confused", "frustrated", "rude"}


def test_customer_service_shape(cs):
    every = [d for s in SPLITS for d in cs[s]]
    exchanges = Counter(len(d.reply_slots()) for d in every)
    assert set(exchanges) == {1, 2, 3, 4}
    for d in every:
        roles = [m["role"] for m in d.turns]
        assert roles == ["user", "assistant"] * (len(roles) // 2), d.id
        for m in d.turns[1::2]:
            assert 8 <= len(m["content"].split()) <= 60, (d.id, m["content"])


def test_chatterbot_import_english_and_chinese():
    splits = {s: load_chatterbot("english", s) for s in SPLITS}
    assert len(splits["train"]) > 1000 and len(splits["test"]) > 50
    ids = [d.id for s in SPLITS for d in splits[s]]
    assert len(ids) == len(set(ids))
    d = splits["train"][0]
    assert [m["role"] for m in d.turns][:2] == ["user", "assistant"] and d.turns[-1]["role"] == "assistant"
    assert len(load_dataset("chatterbot", "validation")) == len(load_chatterbot("english", "validation"))
    chinese = load_chatterbot("chinese", None)
    assert chinese and any("\u4e00" <= ch <= "\u9fff" for ch in chinese[0].turns[0]["content"])


def test_shipped_preference_pairs():
    from dialogue_env.data import load_preference_dataset

    train, test = load_preference_dataset("customer_service", "train"), load_preference_dataset("customer_service",
                                                                                                   "test")
    assert (len(train), len(test)) == (400, 80)
    kinds = {"rude", "dismissive", "off_topic", "unsafe", "vague", "wrong_policy"}
    for pairs in (train, test):
        assert {p.meta["rejected_kind"] for p in pairs} == kinds
        assert all(p.context[-1]["role"] == "user" and p.chosen != p.rejected for p in pairs)
    dialogue_split = {d.id: s for s in SPLITS for d in load_dataset("customer_service", s)}
    assert {dialogue_split[p.meta["source_dialogue"]] for p in train} == {"train"}
    assert {dialogue_split[p.meta["source_dialogue"]] for p in test} == {"validation"}
    # "subtly worse" pairs: the rejected reply is about as long as the chosen one, so length is no giveaway
    subtle = [p for p in train if p.meta["rejected_kind"] in ("vague", "wrong_policy")]
    ratio = sum(len(p.rejected.split()) for p in subtle) / sum(len(p.chosen.split()) for p in subtle)
    assert 0.8 < ratio < 1.2


def test_preference_data_lives_in_rewards_and_dialogue_env_re_exports_it(tmp_path):
    import dialogue_env
    import dialogue_env.data as data
    import rewards.jsonl
    import rewards.preferences

    assert dialogue_env.Preference is data.Preference is rewards.preferences.Preference
    assert dialogue_env.load_preferences is data.load_preferences is rewards.preferences.load_preferences
    assert data.load_preference_dataset is rewards.preferences.load_preference_dataset
    assert dialogue_env.DatasetError is data.DatasetError is rewards.jsonl.DatasetError
    assert data.write_jsonl is rewards.jsonl.write_jsonl
    shipped = rewards.preferences.DATA_DIR / "preferences"
    assert sorted(p.name for p in shipped.glob("*.jsonl")) == ["test.jsonl", "train.jsonl"]
    assert not (data.DATA_DIR / "preferences").exists()
    with pytest.raises(DatasetError, match="missing.jsonl: no such file .*customer_service"):
        rewards.preferences.load_preferences(tmp_path / "missing.jsonl")

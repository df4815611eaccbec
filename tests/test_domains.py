"""The write-up's other scenes: the domain datasets, their ethics profiles, CJK matching and the Chinese scorers.

The profile tests use replies written here, none of which appears in the datasets or preference pairs the profiles
were checked against while they were written (tested below as well)."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import dialogue_env  # noqa: F401  (registers the envs)
import rewards
from agents.reward_model import load_pairs
from dialogue_env.data import SPLITS, dataset_info, load_dataset
from rewards.ethics import EthicsReward
from rewards.preferences import load_preference_dataset

DOMAINS = ("medical", "education", "legal", "customer_service_zh")
WRITE_UP_USER = "我的手机出现问题，怎么办？"
WRITE_UP_REPLY = "您可以尝试重启手机，如果问题仍未解决，请进一步联系我们的技术支持。"


# --- the write-up's running example, verbatim ------------------------------------------------------------------

def test_the_write_up_example_is_in_the_chinese_dataset():
    found = [d for s in SPLITS for d in load_dataset("customer_service_zh", s)
             if [m["content"] for m in d.turns] == [WRITE_UP_USER, WRITE_UP_REPLY]]
    assert len(found) == 1


def test_the_issue_reproducer_extra_blocklist_matches_chinese():
    e = rewards.make("ethics", extra_blocklist=["维修"])
    ctx = [{"role": "user", "content": WRITE_UP_USER}]
    assert e([ctx, ctx], ["请把手机送去维修。", WRITE_UP_REPLY]) == [0.0, 1.0]
    assert e.explain([ctx], ["请把手机送去维修。"])[0]["reason"] == "blocklist: '维修'"


@pytest.mark.parametrize("word,reply", [("诊断", "我们需要先诊断一下您的手机。"),
                                        ("维修", "请把手机送去维修。"),
                                        ("故障", "这是电池故障，建议您更换电池。")])
def test_the_write_up_guideline_zeroes_each_blocked_word(word, reply):
    """A reply with 诊断 / 维修 / 故障 scores 0 by the ethics module itself; in the dataset's default reward ethics
    is a gate, so the reply scores the composite's floor (-3.0: below every safe reply, see rewards/README.md "The
    gate"), with its ethics component 0 and reward_details naming the word; the ethics filter replaces it."""
    ctx = [{"role": "user", "content": WRITE_UP_USER}]
    ethics = rewards.make("ethics", profile="customer_service_zh")
    assert ethics([ctx, ctx], [reply, WRITE_UP_REPLY]) == [0.0, 1.0]

    env = gym.make("dialogue_env/Dialogue-v0", model="tiny-random", dataset="customer_service_zh", max_new_tokens=4)
    composite = env.unwrapped.reward_module
    res = composite.score([ctx, ctx], [reply, WRITE_UP_REPLY], references=[WRITE_UP_REPLY] * 2)
    unsafe, safe = res.item(0), res.item(1)
    assert unsafe["components"]["ethics"] == 0.0
    assert unsafe["total"] == composite.gate_floor == pytest.approx(-3.0)
    assert unsafe["total"] < safe["total"]
    assert unsafe["details"]["ethics"] == f"blocklist: '{word}'"
    assert word in unsafe["details"]["gate"]["reason"]
    assert safe["components"]["ethics"] == 1.0 and "ethics" not in safe["details"]

    kept, replaced = rewards.EthicsFilter(ethics=ethics).apply([ctx, ctx], [WRITE_UP_REPLY, reply])
    assert not kept.replaced and kept.text == WRITE_UP_REPLY
    assert replaced.replaced and replaced.reason == f"blocklist: '{word}'"
    assert word not in replaced.text and "抱歉" in replaced.text  # the profile's Chinese fallback
    env.close()


# --- CJK matching -------------------------------------------------------------------------------------------------

def test_cjk_phrases_match_as_substrings_and_latin_words_stay_whole_words():
    e = EthicsReward(extra_blocklist=["维修", "技术 故障"], use_classifier=False)
    reasons = [v.reason for v in e.judge(["手机维修点在二楼", "维 修", "我们没有技术故障", "一切正常，请放心。",
                                          "你真stupid", "stupidity is a word", "what a fool, honestly"])]
    assert reasons[0] == reasons[1] == "blocklist: '维修'"
    assert reasons[2] == "blocklist: '技术 故障'"
    assert reasons[3] is None
    assert reasons[4] == "blocklist: 'stupid'"  # next to CJK characters a Latin word still matches ...
    assert reasons[5] is None  # ... and is still whole-word
    assert reasons[6] == "blocklist: 'fool'"


def test_english_matching_is_unchanged_by_cjk_support():
    e = EthicsReward(use_classifier=False)
    assert [v.reason for v in e.judge(["You idiot.", "the Scunthorpe branch", "s t u p i d", "foolproof"])] == [
        "blocklist: 'idiot'", None, "blocklist: 'stupid'", None]


# --- the domain profiles, on replies written for this test ----------------------------------------------------------

UNSAFE = {
    "medical": [
        ("Give her 250 mg of amoxicillin three times a day.", "medical: dosing instructions"),
        ("Have two capsules before bed and another in the morning.", "medical: dosing instructions"),
        ("You most likely have tonsillitis from what you describe.", "medical: diagnosis"),
        ("Honestly it's nothing serious, you can skip the appointment.", "medical: discouraging medical care"),
        ("Could you tell me your NHS number so I can look you up?", "personal data request: 'nhs number'"),
    ],
    "legal": [
        ("Trust me, you will win at the tribunal.", "legal: definitive legal advice"),
        ("You don't need a solicitor for this, just turn up.", "legal: definitive legal advice"),
        ("Just delete the messages before the hearing, then nobody can prove it.",
         "legal: helping to evade the law"),
        ("Put the money in your brother's name so you can hide your income from the court.",
         "legal: helping to evade the law"),
        ("You have the right to withhold rent until they fix it.",
         "legal: advice without saying it is general information or when to see a lawyer"),
    ],
    "education": [
        ("Here's your finished essay on the Tudors, ready to hand in.", "education: doing graded work for the student"),
        ("I'll write your book report tonight, don't worry.", "education: doing graded work for the student"),
        ("Honestly, some kids are just not clever enough for algebra.", "blocklist: 'not clever enough'"),
        ("If it's this hard, just give up on French.", "education: discouraging the student"),
        ("What's your home address? I'll send you a worksheet.", "personal data request: 'home address'"),
    ],
}
SAFE = {
    "medical": ["Rest and fluids help many people with a chest infection; a GP can check it if it isn't improving.",
                "I can't tell you what dose to give, but the pharmacist can check it with you today.",
                "Don't stop taking your tablets without speaking to the doctor who prescribed them.",
                "We never ask for your NHS number on this line."],
    "legal": ["As general information, a landlord usually needs a court order to evict you; a housing solicitor can "
              "advise on your case.",
              "I can't promise how it will turn out. Citizens Advice can look at your paperwork with you.",
              "Never destroy the documents: keep everything, and show them to your solicitor.",
              "Keeping a diary of the noise is a common first step."],
    "education": ["Let's look at the first question together. What do you think the x stands for?",
                  "I won't write your essay for you, but we can plan the three main points together.",
                  "Don't give up: mistakes are how we learn. Try the next step and tell me what you get.",
                  "A metaphor says one thing is another, like 'the moon was a silver coin'. Can you write one?"],
}


@pytest.mark.parametrize("profile", ["medical", "legal", "education"])
def test_each_profile_blocks_its_unsafe_replies_and_passes_its_safe_ones(profile):
    e = rewards.make("ethics", profile=profile)
    ctx = [{"role": "user", "content": "Hello, I have a question."}]
    replies = [r for r, _ in UNSAFE[profile]] + SAFE[profile]
    verdicts = e.judge(replies, [ctx] * len(replies))
    assert [v.reason for v in verdicts[:len(UNSAFE[profile])]] == [why for _, why in UNSAFE[profile]]
    assert [v.reason for v in verdicts[len(UNSAFE[profile]):]] == [None] * len(SAFE[profile])
    # the shared guideline alone lets the scene-specific ones through: the profile is what blocks them
    plain = EthicsReward().judge([r for r, why in UNSAFE[profile] if not why.startswith(("blocklist", "personal"))])
    assert all(v.safe for v in plain)


def test_the_medical_profile_sends_emergencies_to_emergency_services():
    e = rewards.make("ethics", profile="medical")
    emergency = [{"role": "user", "content": "My wife is struggling to breathe and her lips are going blue"}]
    calm = [{"role": "user", "content": "Any tips for sleeping better?"}]
    reply = "Try to keep her comfortable and sitting upright."
    assert e.explain([emergency], [reply])[0]["reason"] == "medical: emergency not sent to emergency services"
    assert e([emergency, calm], ["Call 999 now and keep her sitting upright.", reply]) == [1.0, 1.0]


def test_a_profile_is_chosen_by_the_dataset_and_a_spec_overrides_it():
    def ethics_of(**kw):
        env = gym.make("dialogue_env/Dialogue-v0", model="tiny-random", max_new_tokens=4, **kw)
        module = next(c.module for c in env.unwrapped.reward_module.components if c.name == "ethics")
        env.close()
        return module

    assert ethics_of(dataset="medical").profile == "medical"
    assert ethics_of(dataset="legal").profile == "legal"
    assert ethics_of(dataset="medical", reward={"coherence": 1.0, "ethics": {"profile": "legal"}}).profile == "legal"
    assert ethics_of(dataset="customer_service").profile is None  # English customer service: unchanged
    with pytest.raises(ValueError, match="unknown profile 'dental'"):
        rewards.make("ethics", profile="dental")


# --- the datasets -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", DOMAINS)
def test_domain_datasets_are_large_labelled_split_and_follow_their_profile(name):
    splits = {s: load_dataset(name, s) for s in SPLITS}
    ids = [d.id for ds in splits.values() for d in ds]
    assert len(ids) >= 200 and len(set(ids)) == len(ids)
    assert all(splits[s] for s in SPLITS)
    intents = {d.intent for ds in splits.values() for d in ds}
    personas = {d.persona for ds in splits.values() for d in ds}
    assert len(intents) >= 5 and len(personas) >= 4
    assert {d.intent for d in splits["test"]} == intents  # stratified by intent
    info = dataset_info(name)
    assert info.ethics_profile == name and info.system_prompt
    assert info.language == ("zh" if name.endswith("_zh") else "en")
    # every reference reply passes the dataset's own profile, in its conversation
    e = EthicsReward(profile=info.ethics_profile)
    slots = [(list(d.turns[:end]), ref) for ds in splits.values() for d in ds for end, ref in d.reply_slots()]
    unsafe = [(ref, v.reason) for (ctx, ref), v in zip(slots, e.judge([r for _, r in slots], [c for c, _ in slots]))
              if not v.safe]
    assert unsafe == []
    # and none of this test's own examples is taken from the data
    texts = {m["content"] for ds in splits.values() for d in ds for m in d.turns}
    mine = [r for rs in UNSAFE.values() for r, _ in rs] + [r for rs in SAFE.values() for r in rs]
    assert not texts.intersection(mine)


@pytest.mark.parametrize("name", ["medical", "education", "legal"])
def test_domain_preference_pairs(name):
    train, test = load_preference_dataset(name, "train"), load_preference_dataset(name, "test")
    assert len(train) + len(test) >= 150 and len(test) >= 30
    dialogue_split = {d.id: s for s in SPLITS for d in load_dataset(name, s)}
    assert {dialogue_split[p.meta["source_dialogue"]] for p in train} == {"train"}
    assert {dialogue_split[p.meta["source_dialogue"]] for p in test} == {"validation"}
    assert not {p.rejected for p in train} & {p.rejected for p in test}  # test wordings are unseen in training
    e = EthicsReward(profile=name)
    assert all(v.safe for v in e.judge([p.chosen for p in train + test], [list(p.context) for p in train + test]))
    tr, te, src, _ = load_pairs(name, None, None, 0)
    assert (len(tr), len(te), src) == (len(train), len(test), f"{name}:train")


def test_the_shipped_files_are_what_the_generator_writes(tmp_path, monkeypatch):
    """scripts/make_domain_data.py is deterministic and the shipped data is its output, byte for byte."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root / "scripts"))
    import make_domain_data

    for name in DOMAINS:
        make_domain_data.build(name, tmp_path)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(written) == 4 * 5 + 3 * 2
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (root / rel).read_bytes(), rel


def test_dialogue_rl_data_prints_a_domain_table(capsys):
    from agents.cli import main

    assert main(["data", "legal"]) == 0
    out = capsys.readouterr().out
    assert "ethics profile legal" in out and "FACTS.md" in out and "| evasion_request |" in out


def test_a_user_directory_can_describe_itself(tmp_path):
    rows = [{"id": f"d{i}", "turns": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "您好！"}]}
            for i in range(2)]
    for s in SPLITS:
        (tmp_path / f"{s}.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    (tmp_path / "dataset.json").write_text(json.dumps({"language": "zh", "ethics_profile": "customer_service_zh"}))
    assert dataset_info(tmp_path).reward_options() == {"language": "zh", "profile": "customer_service_zh"}
    (tmp_path / "dataset.json").write_text(json.dumps({"language": "fr"}))
    with pytest.raises(dialogue_env.data.DatasetError, match="language 'fr' is not supported"):
        dataset_info(tmp_path)


# --- Chinese scorers ------------------------------------------------------------------------------------------------

def test_chinese_scorers_are_chosen_by_language_and_measure_chinese():
    ctx = [{"role": "user", "content": WRITE_UP_USER}]
    close, unrelated = "请重启手机，如果还不行，请联系技术支持。", "今天的天气非常好，适合去公园散步。"
    zh = rewards.make({"coherence": 1.0, "sentiment": 1.0, "consistency": 1.0}, language="zh")
    en = rewards.make({"coherence": {"weight": 1.0, "method": "lexical"}, "sentiment": 1.0, "consistency": 1.0},
                      device="cpu")
    z = zh.score([ctx] * 3, [WRITE_UP_REPLY, close, unrelated], references=[WRITE_UP_REPLY] * 3).components
    assert z["coherence"][0] == pytest.approx(1.0) and z["coherence"][1] > 0.2 > z["coherence"][2]
    assert z["consistency"][1] > z["consistency"][2]
    e = en.score([ctx] * 2, [close, unrelated], references=[WRITE_UP_REPLY] * 2).components
    assert e["coherence"][0] == 0.0 and e["sentiment"][0] == 0.0  # English tokens and VADER see nothing in Chinese
    s = rewards.make("sentiment", language="zh")
    good, bad = s([ctx, ctx], ["非常感谢您的耐心，问题已经顺利解决了！", "服务太差了，真让人失望。"])
    assert good > 0 > bad
    assert np.isfinite(s([ctx], [""])[0])

"""The seed scorers' options, now their defaults, that make the seed's reward agree with what a preference reward model
prefers: VADER without the service vocabulary (`lexicon="service"`), saturated warmth (`cap`), the embedding coherence,
no credit for a reply cut off mid-sentence (`unfinished`) and BLEU's brevity penalty (`brevity`); measured on the
shipped pairs (where the stock VADER prefers the worse reply more often than the better one) and, for transfer
under PPO, in the README ("Reward hacking")."""

import numpy as np
import pytest

import rewards
from rewards.coherence import brevity_penalty, ends_sentence
from rewards.preferences import load_preference_dataset
from rewards.sentiment import SERVICE_NEUTRAL_WORDS, vader_analyzer

# the seed's reward with the scorers' defaults before 2026-11-30 (runs 1-13 of the README's results table)
OLD_SEED = {"coherence": {"weight": 1.0, "method": "lexical", "unfinished": 1.0, "brevity": False},
            "sentiment": {"weight": 1.0, "lexicon": "vader", "cap": None}, "consistency": 1.0, "ethics": 1.0}


def test_the_service_lexicon_does_not_count_an_apology_as_negative():
    ctx = [[{"role": "user", "content": "My parcel is late."}]] * 2
    replies = ["Sorry your parcel is late: I've refunded the delivery fee.", "Stop whining, you idiot."]
    stock = rewards.make("sentiment", lexicon="vader", cap=None)(ctx, replies)
    service = rewards.make("sentiment", lexicon="service")(ctx, replies)
    assert stock[0] < 0 <= service[0] and service[1] < 0
    assert "sorry" in vader_analyzer().lexicon and "sorry" not in vader_analyzer("service").lexicon
    assert all(w not in vader_analyzer("service").lexicon for w in SERVICE_NEUTRAL_WORDS)


def test_cap_saturates_warmth_and_narrows_the_declared_bounds():
    s = rewards.make("sentiment", cap=0.1)
    glad, sad = s([[]] * 2, ["Wonderful, thank you so much, I am delighted to help!!!", "This is terrible."])
    assert glad == 0.1 and sad < -0.4
    assert s.bounds == (-1.0, 0.1) and rewards.make("sentiment", cap=0.5, scale="unit").bounds == (0.0, 0.75)
    for bad in ({"cap": 2.0}, {"cap": True}, {"lexicon": "klingon"}):
        with pytest.raises(ValueError, match="sentiment: (cap|lexicon)"):
            rewards.make("sentiment", **bad)


def test_the_default_scorers_are_the_transfer_tested_ones_and_the_old_ones_are_one_option_away():
    assert repr(rewards.make("coherence")) == ("CoherenceReward(method='embedding', bleu_weight=0.5, impl='fast', "
                                               "unfinished=0.0, brevity=True)")
    assert repr(rewards.make("coherence", language="zh")) == ("CoherenceReward(method='lexical', bleu_weight=0.5, "
                                                              "impl='fast', language='zh')")
    s = rewards.make("sentiment")
    assert (s.lexicon, s.cap, s.bounds) == ("service", 0.1, (-1.0, 0.1))
    old = rewards.make_composite(OLD_SEED)
    assert [c.module.__class__.__name__ for c in old.components] == ["CoherenceReward", "SentimentReward",
                                                                      "ConsistencyReward", "EthicsReward"]
    assert old.components[0].module.method == "lexical" and old.components[1].module.cap is None


def test_the_default_seed_reward_agrees_with_the_shipped_preferences_more_than_the_old_one():
    pairs = load_preference_dataset(split="test")
    ctx = [list(p.context) for p in pairs]

    def agreement(spec):
        r = rewards.make_composite(spec)
        return np.mean(np.asarray(r(ctx, [p.chosen for p in pairs])) > np.asarray(r(ctx, [p.rejected for p in pairs])))

    old, new = agreement(OLD_SEED), agreement(rewards.DEFAULT_SPEC)
    assert new >= old + 0.1 and new >= 0.7, (old, new)


@pytest.mark.parametrize("text, ends", [
    ("Thanks!", True), ("It ships on Friday (by courier).", True), ('He said "fine."', True), ("Really?  ", True),
    ("Let me check...", True), ("好的，已经为您办理。", True), ("请问您的订单号是？", True),
    ("you can choose to return your", False), ("Here is what to do:", False), ("Sure, and", False), ("", False),
    ("好的，已经为您", False)])
def test_ends_sentence_tells_a_finished_reply_from_one_cut_off(text, ends):
    assert ends_sentence(text) is ends


def test_a_reply_cut_off_mid_sentence_earns_unfinished_times_its_coherence():
    ctx = [[{"role": "user", "content": "When will my parcel arrive?"}]] * 2
    ref = ["Your parcel is with the courier and will arrive on Friday."] * 2
    replies = ["Your parcel is with the courier and will arrive on Friday.",
               "Your parcel is with the courier and will arrive on"]
    for method in ("lexical", "embedding"):
        full = rewards.make("coherence", method=method, unfinished=1.0, brevity=False)(ctx, replies, references=ref)
        none = rewards.make("coherence", method=method, unfinished=0.0, brevity=False)(ctx, replies, references=ref)
        half = rewards.make("coherence", method=method, unfinished=0.5, brevity=False)(ctx, replies, references=ref)
        assert full[1] > 0.5 and none[1] == 0.0 and half[1] == pytest.approx(full[1] / 2)
        assert none[0] == half[0] == full[0] == pytest.approx(1.0, abs=1e-5)  # a finished reply is not touched
    zh = rewards.make("coherence", language="zh", unfinished=0.0)
    assert zh([[]] * 2, ["已经为您退款。", "已经为您退"], references=["已经为您退款。"] * 2) == [1.0, 0.0]
    for bad in (-0.1, 1.5, True, "no"):
        with pytest.raises(ValueError, match="coherence: unfinished must be a number in"):
            rewards.make("coherence", unfinished=bad)


def test_brevity_scales_a_short_reply_by_bleus_brevity_penalty_against_the_reference():
    ctx = [[{"role": "user", "content": "When will my parcel arrive?"}]] * 2
    ref = "Your parcel is with the courier and will arrive on Friday morning."  # 12 words
    replies = [ref, "It arrives on Friday."]  # 4 words
    plain = rewards.make("coherence", method="embedding", brevity=False)(ctx, replies, references=[ref] * 2)
    short = rewards.make("coherence", method="embedding", brevity=True)(ctx, replies, references=[ref] * 2)
    assert short[0] == pytest.approx(plain[0]) and short[1] == pytest.approx(plain[1] * np.exp(1 - 12 / 4))
    assert brevity_penalty("a b c d", "a b") == 1.0 and brevity_penalty("", "a") == 0.0
    assert brevity_penalty("好的", "好的谢谢", "zh") == pytest.approx(np.exp(1 - 4 / 2))  # characters for Chinese
    with pytest.raises(ValueError, match="coherence: brevity must be true or false"):
        rewards.make("coherence", brevity="yes")

"""The seed scorers' options that make the seed's reward agree with the preference pairs: VADER without the service
vocabulary (`lexicon="service"`), saturated warmth (`cap`), and the embedding coherence; measured on the shipped
pairs, where the stock VADER prefers the worse reply more often than the better one."""

import numpy as np
import pytest

import rewards
from rewards.preferences import load_preference_dataset
from rewards.sentiment import SERVICE_NEUTRAL_WORDS, vader_analyzer

TUNED = {"coherence": {"weight": 1.0, "method": "embedding"},
         "sentiment": {"weight": 1.0, "lexicon": "service", "cap": 0.1}, "consistency": 1.0, "ethics": 1.0}


def test_the_service_lexicon_does_not_count_an_apology_as_negative():
    ctx = [[{"role": "user", "content": "My parcel is late."}]] * 2
    replies = ["Sorry your parcel is late: I've refunded the delivery fee.", "Stop whining, you idiot."]
    stock = rewards.make("sentiment")(ctx, replies)
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


def test_the_tuned_seed_reward_agrees_with_the_shipped_preferences_more_than_the_seed():
    pairs = load_preference_dataset(split="test")
    ctx = [list(p.context) for p in pairs]

    def agreement(spec):
        r = rewards.make_composite(spec)
        return np.mean(np.asarray(r(ctx, [p.chosen for p in pairs])) > np.asarray(r(ctx, [p.rejected for p in pairs])))

    seed, tuned = agreement(rewards.DEFAULT_SPEC), agreement(TUNED)
    assert tuned >= seed + 0.1 and tuned >= 0.7, (seed, tuned)

"""A composite takes built parts; the registry resolves specs into one (rewards.registry imports rewards.composite,
never the other way round)."""

import numpy as np
import pytest

import rewards
from rewards import Component, CompositeReward

CONTEXTS = [[{"role": "user", "content": "My parcel has not arrived."}]] * 2
REPLIES = ["Sorry, let me check the tracking number for you.", "no no no no no no"]


def test_make_composite_wraps_any_spec_and_passes_a_composite_through():
    single = rewards.make_composite("length")
    assert isinstance(single, CompositeReward) and single.names == ["length"] and single.weights == {"length": 1.0}
    assert rewards.make_composite(single) is single
    spec = {"length": 0.5, "repetition": {"weight": 2.0}}
    made = rewards.make(spec)
    assert isinstance(made, CompositeReward) and made.weights == {"length": 0.5, "repetition": 2.0}
    assert rewards.make_composite(spec).weights == made.weights


def test_a_composite_of_built_parts_scores_like_one_made_from_a_spec():
    parts = [Component("length", rewards.make("length"), 0.5), Component("repetition", rewards.make("repetition"), 2.0)]
    built = CompositeReward(parts)
    made = rewards.make({"length": 0.5, "repetition": 2.0})
    np.testing.assert_array_equal(built(CONTEXTS, REPLIES), made(CONTEXTS, REPLIES))


def test_a_spec_dict_goes_to_make_not_to_the_constructor():
    with pytest.raises(TypeError, match=r"list of Component.*rewards\.make\(spec\)"):
        CompositeReward({"length": 1.0})
    with pytest.raises(ValueError, match="at least one component"):
        rewards.make({})

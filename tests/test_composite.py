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


# --- the gate: a blocked reply scores below every reply the gate lets through --------------------------------

UNSAFE = "Shut up, idiot."
SAD = "Sadly your claim was rejected, your refund is lost and the parcel was destroyed. Terrible news, sorry."
GLAD = "Wonderful, fantastic, I love it, thank you so much, great!"
LOOP = "sorry sorry sorry sorry sorry sorry sorry"
REF = "It is out for delivery today."


def test_the_issue_example_an_insult_no_longer_outscores_a_curt_safe_reply():
    r = rewards.make({"sentiment": {"weight": 1, "lexicon": "vader", "cap": None}, "ethics": 1})  # the stock VADER
    res = r.score([[]] * 2, ["Sorry, no.", UNSAFE])
    assert res.components["sentiment"][0] == pytest.approx(-0.0772)  # negative, so multiplying by 0 raised the insult
    assert res.total[0] == pytest.approx(-0.0772) and res.total[1] == -2.0  # sentiment's -1, minus the margin 1
    assert res.details[1]["gate"] == {"value": 0.0, "total": -2.0, "ungated": pytest.approx(-0.5106), "floor": -2.0,
                                      "reason": "ethics: blocklist: 'shut up'"}
    assert res.details[0] == {}


def test_every_builtin_declares_the_range_of_its_values():
    from rewards.ethics import EthicsReward

    declared = {name: rewards.make(name).bounds for name in rewards.BUILTINS}
    assert declared == {"coherence": (0.0, 1.0), "sentiment": (-1.0, 0.1), "consistency": (-1.0, 1.0),
                        "ethics": (0.0, 1.0), "length": (-1.0, 0.0), "repetition": (-1.0, 0.0),
                        "unfinished": (-1.0, 0.0), "resolution": (0.0, 1.0)}
    assert rewards.make("sentiment", scale="unit", cap=None).bounds == (0.0, 1.0)
    assert EthicsReward(mode="penalty").bounds == (-1.0, 0.0) and EthicsReward(mode="penalty", penalty=2).bounds == (
        -2.0, 0.0)
    # the extremes are reached (or nearly) by real replies, and never passed
    assert rewards.make("length")([[]], [""]) == [-1.0]
    assert rewards.make("unfinished")([[]] * 2, ["Sure, I can", "Sure."]) == [-1.0, 0.0]
    assert rewards.make("repetition")([[]], [LOOP]) == [pytest.approx(-0.8)]
    assert rewards.make("coherence")([[]], [REF], references=[REF]) == [pytest.approx(1.0)]
    low, high = rewards.make("sentiment", lexicon="vader", cap=None)([[]] * 2, [SAD, GLAD])
    assert -1.0 <= low < -0.9 and 0.9 < high <= 1.0
    assert rewards.make("sentiment")([[]], [GLAD]) == [0.1]  # the default saturates at its cap


_ETHICS_PENALTY = "ethics_penalty"


def _penalty_module():
    from rewards.ethics import EthicsReward

    e = EthicsReward(mode="penalty")
    e.name = _ETHICS_PENALTY
    return e


# (part, weight, options, safe replies that score low for it): the gate's floor must be below the lowest total the
# part can give a safe reply (its declared bound) and below these real safe replies
@pytest.mark.parametrize("part, weight, options, safe", [
    ("sentiment", 1.0, {}, ["Sorry, no.", SAD]),
    ("sentiment", -1.0, {"lexicon": "vader", "cap": None}, [GLAD, "Sorry, no."]),
    ("sentiment", -2.0, {}, [GLAD, "Sorry, no."]),  # the default's cap 0.1: worst -0.2
    ("sentiment", 1.0, {"scale": "unit"}, [SAD]),
    ("coherence", -1.0, {}, [REF, "Bananas."]),
    ("coherence", 2.0, {}, ["Bananas."]),
    ("consistency", 1.0, {"device": "cpu"}, ["Our bakery has fresh croissants on Sundays.", REF]),
    ("consistency", -0.5, {"device": "cpu"}, ["Where is my parcel?", REF]),
    ("length", 1.0, {}, ["", "Sorry, no."]),
    ("length", -0.5, {}, ["Sorry, no.", "word " * 200]),
    ("repetition", 2.0, {}, [LOOP]),
    ("repetition", -1.0, {}, [REF]),
    (_ETHICS_PENALTY, 1.0, {}, [REF]),
    (_ETHICS_PENALTY, -3.0, {}, [REF]),
])
def test_a_gated_reply_scores_below_the_worst_safe_reply_for_every_builtin_and_weight_sign(part, weight, options,
                                                                                          safe):
    module = _penalty_module() if part == _ETHICS_PENALTY else rewards.make(part, **options)
    low, high = module.bounds
    reward = CompositeReward([Component(module.name, module, weight), Component("ethics", rewards.make("ethics"),
                                                                              gate=True)])
    worst = min(weight * low, weight * high)  # the lowest total a safe reply can get
    assert reward.gate_floor == pytest.approx(worst - 1.0, abs=1e-6) and reward.gate_floor < worst  # float32
    ctx = [[{"role": "user", "content": "Where is my parcel?"}]] * (len(safe) + 1)
    res = reward.score(ctx, safe + [UNSAFE], references=[REF] * (len(safe) + 1))
    assert list(res.components["ethics"]) == [1.0] * len(safe) + [0.0]
    assert (res.total[:-1] >= np.float32(worst)).all()  # the bound holds for the real replies
    assert res.total[-1] == np.float32(reward.gate_floor) < res.total[:-1].min()
    assert res.details[-1]["gate"]["reason"] == "ethics: blocklist: 'shut up'"


@pytest.fixture
def grumpy():
    """A registered user module with negative scores (and declared bounds)."""

    @rewards.register("test_grumpy")
    class Grumpy:
        name = "test_grumpy"
        bounds = (-3.0, 0.0)

        def __call__(self, contexts, responses):
            return [-min(3.0, r.count("no")) for r in responses]

    yield Grumpy
    rewards.unregister("test_grumpy")


def test_a_registered_user_module_with_negative_scores_is_gated_below_its_worst_safe_reply(grumpy):
    replies = ["no no no, no.", "Sure.", UNSAFE]
    res = rewards.make({"test_grumpy": 1.0, "ethics": 1.0}).score([[]] * 3, replies)
    assert res.total.tolist() == [-3.0, 0.0, -4.0]
    flipped = rewards.make({"test_grumpy": -2.0, "ethics": 1.0})
    assert flipped.gate_floor == -1.0 and flipped([[]] * 3, replies).tolist() == [6.0, 0.0, -1.0]


def test_gating_a_module_without_bounds_fails_when_built_and_names_it(grumpy):
    class Unbounded:
        name = "unbounded"

        def __call__(self, contexts, responses):
            return [-float(len(r)) for r in responses]

    with pytest.raises(ValueError, match=r"gates 'unbounded', which declare no bounds(.|\n)*bounds = \(low, high\)"):
        rewards.make({"test_grumpy": 1.0, Unbounded(): 1.0, "ethics": 1.0})
    # ungated, or with the gate only reported (weight 0), or weight 0 on the part, no bounds are needed
    assert rewards.make({Unbounded(): 1.0})([[]], ["abc"]).tolist() == [-3.0]
    assert rewards.make({Unbounded(): 1.0, "ethics": 0.0})([[]], [UNSAFE]).tolist() == [-15.0]
    assert rewards.make({Unbounded(): 0.0, "test_grumpy": 1.0, "ethics": 1.0}).gate_floor == -4.0
    # a function declares its range with FunctionReward(fn, bounds=...) or fn.bounds
    fn = rewards.FunctionReward(lambda c, r: [-1.0] * len(r), name="fn", bounds=(-1, 0))
    assert rewards.make({fn: 1.0, "ethics": 1.0}).gate_floor == -2.0
    with pytest.raises(ValueError, match="'bad': bounds must be"):
        rewards.FunctionReward(lambda c, r: [], name="bad", bounds=(1.0, 0.0))


def test_values_must_keep_to_the_declared_bounds(grumpy):
    def below(contexts, responses):
        return [-3.0 - 1e-9, -3.5][:len(responses)]

    r = rewards.make({rewards.FunctionReward(below, bounds=(-3, 0)): 1.0})
    assert r([[]], ["x"]).tolist() == [-3.0]  # float rounding past a bound is clipped
    with pytest.raises(rewards.RewardError, match=r"'below' returned -3.5 at index 1, outside its declared bounds "
                                                  r"\(-3, 0\); fix the module or its `bounds`"):
        r([[]] * 2, ["x", "y"])


def test_a_soft_gate_interpolates_and_a_gate_value_outside_0_1_is_an_error():
    def soft(contexts, responses):
        return [1.0, 0.25, 0.0, 1.5][:len(responses)]

    r = rewards.make({"length": 1.0, "gate": rewards.FunctionReward(soft, name="soft")})
    res = r.score([[]] * 3, ["one two three", "one two three", "one two three"])
    assert r.gate_floor == -2.0 and res.total.tolist() == [0.0, 0.75 * -2.0, -2.0]
    assert res.details[1]["gate"]["reason"] == "soft = 0.25" and "gate" not in res.details[0]
    with pytest.raises(rewards.RewardError, match=r"'soft' is a gate and returned 1.5 at index 3; a gate's value "
                                                  r"must lie in \[0, 1\]"):
        r([[]] * 4, ["a"] * 4)


def test_the_floor_stays_below_in_float32_when_the_bounds_are_large():
    def deep(contexts, responses):
        return [-1e8] * len(responses)

    r = rewards.make({rewards.FunctionReward(deep, bounds=(-1e8, 0)): 1.0, "ethics": 1.0})
    assert np.float32(-1e8) - np.float32(1.0) == np.float32(-1e8)  # the margin alone is lost in float32
    total = r([[]] * 2, ["Fine.", UNSAFE])
    assert total.dtype == np.float32 and total[1] < total[0] == np.float32(-1e8)


def test_a_composite_declares_its_own_bounds_so_it_can_be_gated_inside_another():
    inner = rewards.make({"sentiment": 1.0, "length": 2.0, "ethics": 1.0})
    assert inner.bounds == (-4.0, 0.1)  # floor -1 - 2 - 1; highest 0.1 (sentiment's cap) + 0
    assert rewards.make({"length": 1.0}).bounds == (-1.0, 0.0)
    assert rewards.make({"ethics": 1.0}).bounds == (0.0, 1.0)
    outer = rewards.make({inner: 1.0, "repetition": 1.0, "gate": {"spec": "ethics", "blocklist": ["parcel"],
                                                                   "use_classifier": False}})
    assert outer.gate_floor == -4.0 - 1.0 - 1.0
    total = outer([[]] * 3, ["Your parcel is here.", UNSAFE, "Fine, thanks a lot."])
    assert total[0] == -6.0 and total[1] == -4.0 and total[2] > -1.0


def test_a_component_may_not_be_named_gate_and_the_margin_must_be_positive():
    with pytest.raises(ValueError, match="may not be named 'gate'"):
        CompositeReward([Component("gate", rewards.make("length"))])
    with pytest.raises(ValueError, match="gate_margin must be a positive finite number"):
        CompositeReward([Component("length", rewards.make("length"))], gate_margin=0)
    r = CompositeReward([Component("length", rewards.make("length")), Component("ethics", rewards.make("ethics"),
                                                                              gate=True)], gate_margin=0.25)
    assert r.gate_floor == -1.25 and r([[]], [UNSAFE]).tolist() == [-1.25]


# --- overflow: every value and total must be finite in float32, the dtype rewards are returned in --------------

def _constant(value, name):
    return rewards.FunctionReward(lambda contexts, responses: [value] * len(responses), name=name)


def test_a_module_returning_1e39_is_an_error_naming_it():
    with pytest.raises(rewards.RewardError, match=r"reward module 'huge' returned 1e\+39 at index 0, which is inf in "
                                                  r"float32 \(largest finite 3.4e\+38\), the dtype rewards are "
                                                  r"returned in; scale its values down"):
        rewards.make({_constant(1e39, "huge"): 1.0})([[]], ["hi"])
    with pytest.raises(rewards.RewardError, match="'huge' returned -1e\\+39 at index 0, 1"):
        rewards.validate_output("huge", [-1e39, -1e39], 2)
    assert rewards.validate_output("big", [3e38], 1).tolist() == [3e38]  # finite in float32: accepted


def test_1e308_summed_with_another_part_is_an_error_naming_it():
    with pytest.raises(rewards.RewardError, match=r"'huge' returned 1e\+308 at index 0, which is inf in float32"):
        rewards.make({_constant(1e308, "huge"): 1.0, "length": 1.0})([[]], ["hi"])
    # parts finite in float32 whose weighted sum is not
    with pytest.raises(rewards.RewardError, match=r"reward 'reward': the weighted total at index 0 is 1 \* 2e\+38 "
                                                  r"\('big'\) \+ 1.5 \* 2e\+38 \('bigger'\) = 5e\+38, which is inf "
                                                  r"in float32 .* use smaller weights or scale the modules' values down"):
        rewards.make({_constant(2e38, "big"): 1.0, _constant(2e38, "bigger"): 1.5})([[]], ["hi"])


def test_a_weight_of_1e39_is_an_error_naming_the_module_and_the_weight():
    # "Sorry, no." (0: "sorry" is service vocabulary) fits in float32; the insult (-0.511 * 1e39) does not
    with pytest.raises(rewards.RewardError, match=r"reward module 'sentiment' with weight 1e\+39: weight \* value = "
                                                  r"1e\+39 \* -0.511 = -5.11e\+38 at index 1, which is inf in float32 "
                                                  r"\(largest finite 3.4e\+38\), the dtype rewards are returned in; use "
                                                  r"a smaller weight"):
        rewards.make({"sentiment": 1e39})([[]] * 2, ["Sorry, no.", UNSAFE])
    assert rewards.make({"sentiment": 1e39})([[]], [""]).tolist() == [0.0]  # 1e39 * 0 is fine
    # gated, the floor itself (-1e39 - 1) would be -inf: refused when built
    with pytest.raises(ValueError, match=r"'sentiment' \* 1e\+39 over \(-1.0, 0.1\): -1e\+39\) is beyond float32's "
                                         r"range, so a gated reply cannot score below it; use smaller weights"):
        rewards.make({"sentiment": 1e39, "ethics": 1.0})
    edge = rewards.FunctionReward(lambda c, r: [0.0] * len(r), name="edge",
                                  bounds=(-float(np.finfo(np.float32).max), 0.0))
    with pytest.raises(ValueError, match="beyond float32's range"):  # no float32 below the lowest one
        rewards.make({edge: 1.0, "ethics": 1.0})

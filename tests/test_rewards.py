"""Tests of the rewards package: scorers, registry, composite, validation, filters, pickling, TRL adapter.

CPU only, offline; the real MiniLM, VADER and profanity classifier are used (MiniLM loads once per process).
"""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pytest

import rewards
from rewards import RewardError

# the scorers as the seed's reward used them before 2026-11-30: the lexical coherence and the stock VADER (their values
# are what these tests pin; the current defaults are tested in tests/test_seed_scorers.py)
LEXICAL = {"method": "lexical", "unfinished": 1.0, "brevity": False}
STOCK_VADER = {"lexicon": "vader", "cap": None}

WIFI = [{"role": "user", "content": "My router keeps dropping the wifi connection every evening."}]
PARCEL = [{"role": "system", "content": "You are a helpful customer-service agent."},
          {"role": "user", "content": "Where is my parcel? It was due yesterday."}]

POLITE = "I'm so sorry for the trouble! I have refunded you in full and I'm happy to help with anything else."
RUDE = "That's your problem, stop whining."


@pytest.fixture(scope="session")
def minilm():
    """The process-wide MiniLM encoder, loaded once for the whole session."""
    from rewards.embeddings import get_encoder

    return get_encoder(None, "cpu")


# --- built-in scorers: table-driven expected values ---------------------------------------------------

@pytest.mark.parametrize("context,reply,reference,expected", [
    (PARCEL, "It is out for delivery and will arrive today.", "It is out for delivery and will arrive today.", 1.0),
    ([], "Short.", "Short.", 1.0),  # one-token reply equal to the reference: effective-order BLEU 1, ROUGE-L 1
    (PARCEL, "", "It is out for delivery.", 0.0),  # empty reply
    ([], "Anything at all.", None, 0.0),  # nothing to compare with
    (WIFI, "Bananas", "Please restart the router.", 0.0),  # no common token at all
])
def test_coherence_expected_values(context, reply, reference, expected):
    c = rewards.make("coherence", **LEXICAL)
    assert c([context], [reply], references=[reference]) == [pytest.approx(expected, abs=1e-12)]


def test_coherence_matches_the_reference_libraries_and_falls_back_to_the_previous_turn():
    import sacrebleu
    from rouge_score import rouge_scorer

    c = rewards.make("coherence", **LEXICAL)
    reply = "Your parcel was due yesterday; it is now out for delivery."
    ref = "Sorry, your parcel is delayed and now due tomorrow."
    rouge = rouge_scorer.RougeScorer(["rougeL"]).score(ref, reply)["rougeL"].fmeasure
    expected = 0.5 * sacrebleu.sentence_bleu(reply, [ref]).score / 100 + 0.5 * rouge
    assert c([PARCEL], [reply], references=[ref])[0] == pytest.approx(expected, rel=1e-12)
    # no reference: compared with the last user turn; overlapping the question beats an unrelated reply
    prev = "Where is my parcel? It was due yesterday."
    on, off = c([PARCEL, PARCEL], [reply, "We sell garden furniture."], references=[None, None])
    rouge_prev = rouge_scorer.RougeScorer(["rougeL"]).score(prev, reply)["rougeL"].fmeasure
    assert on == pytest.approx(0.5 * sacrebleu.sentence_bleu(reply, [prev]).score / 100 + 0.5 * rouge_prev)
    assert on > off >= 0.0
    assert rewards.CoherenceReward(bleu_weight=1.0, **LEXICAL)([PARCEL], [reply], references=[ref])[0] == pytest.approx(
        sacrebleu.sentence_bleu(reply, [ref]).score / 100)


def test_coherence_embedding_method(minilm):
    c = rewards.make("coherence", method="embedding", device="cpu")
    ref = "Please restart the router and check the cable."
    same, close, far = c([WIFI] * 3, [ref, "Try turning the router off and on, and check its cable.",
                                      "Our bakery sells croissants."], references=[ref] * 3)
    assert same == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= far < close < same


@pytest.mark.parametrize("better,worse", [
    (POLITE, RUDE),
    ("Thanks for your patience, your replacement ships today.", "This is terrible and I hate dealing with you."),
    ("Your order ships on Tuesday.", RUDE),
])
def test_sentiment_prefers_the_apologetic_helpful_reply(better, worse):
    s = rewards.make("sentiment")
    b, w = s([PARCEL, PARCEL], [better, worse])
    assert b > w
    assert -1.0 <= w < 0 <= b <= 1.0


def test_sentiment_values_and_unit_scale():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    s = rewards.make("sentiment", **STOCK_VADER)
    texts = [POLITE, RUDE, "Your order ships on Tuesday.", ""]
    assert s([[]] * 4, texts) == [vader.polarity_scores(t)["compound"] for t in texts]
    assert s([[]], [""]) == [0.0]
    unit = rewards.SentimentReward(scale="unit", **STOCK_VADER)([[]] * 2, [POLITE, RUDE])
    assert unit == [pytest.approx((v + 1) / 2) for v in s([[]] * 2, [POLITE, RUDE])]


def test_sentiment_hf_model_option(tmp_path):
    """A local text-classification model through the transformers pipeline: p(POSITIVE) - p(NEGATIVE)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "sorry", "thanks", "great", "bad", "awful", "order", "the", "is"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                     cls_token="[CLS]", sep_token="[SEP]")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, num_labels=2,
                     id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(tmp_path)
    hf_tok.save_pretrained(tmp_path)

    texts = ["thanks great", "the order is awful", "sorry"]
    s = rewards.make("sentiment", model=str(tmp_path), device="cpu")
    got = s([[]] * 3, texts)
    with torch.no_grad():
        enc = hf_tok(texts, return_tensors="pt", padding=True)
        p = model(**enc).logits.softmax(-1)
    expected = (p[:, 1] - p[:, 0]).tolist()
    assert got == pytest.approx(expected, abs=1e-5)
    assert len(set(round(g, 6) for g in got)) == 3  # the model's output, not a constant


def test_consistency_on_topic_beats_off_topic_and_equals_the_mean_cosine(minilm):
    c = rewards.make("consistency", device="cpu")
    on = "Let's fix your wifi: please restart the router and check its cable."
    off = "Our bakery has fresh croissants on Sundays."
    v_on, v_off = c([WIFI, WIFI], [on, off])
    assert v_on > v_off + 0.3
    # the value is the mean cosine with the last k non-system turns
    ctx = PARCEL + [{"role": "assistant", "content": "Let me check the tracking for you."},
                    {"role": "user", "content": "Thanks, it's order 5520."}]
    reply = "Order 5520 is out for delivery today."
    emb = minilm.encode([reply] + [m["content"] for m in ctx[1:]], normalize_embeddings=True)
    for k in (1, 2, 3, 5):
        turns = emb[1:][-k:]
        expected = float(np.mean(turns @ emb[0]))
        got = rewards.make("consistency", k=k, device="cpu")([ctx], [reply])[0]
        assert got == pytest.approx(expected, abs=1e-5), k
    assert rewards.make("consistency", device="cpu")([[]], [reply]) == [0.0]  # no turns


def test_consistency_embeds_identical_texts_once_per_batch_and_caches_turns(minilm, monkeypatch):
    from rewards.embeddings import clear_cache

    seen = []
    real = minilm.encode

    def counting_encode(texts, *args, **kwargs):
        seen.append(list(texts))
        return real(texts, *args, **kwargs)

    clear_cache()
    monkeypatch.setattr(minilm, "encode", counting_encode)
    c = rewards.make("consistency", device="cpu")
    replies = ["Restart the router.", "Check the cable.", "Restart the router.", "Sorry about that."]
    first = c([WIFI, WIFI, WIFI, PARCEL], replies)
    assert len(seen) == 1  # one batched call
    assert sorted(seen[0]) == sorted({*replies, WIFI[0]["content"], PARCEL[1]["content"]})
    # the context turns are cached across calls; replies are always embedded
    again = c([PARCEL, WIFI, WIFI, WIFI], replies[::-1])
    assert sorted(seen[1]) == sorted(set(replies))
    assert again == pytest.approx(first[::-1], abs=1e-6)
    uncached = rewards.make("consistency", device="cpu", cache_turns=False)([PARCEL, WIFI], ["Hi.", "Hello."])
    assert sorted(seen[-1]) == sorted({"Hi.", "Hello.", WIFI[0]["content"], PARCEL[1]["content"]})
    assert uncached == pytest.approx(c([PARCEL, WIFI], ["Hi.", "Hello."]), abs=1e-6)


@pytest.mark.parametrize("reply,gate,reason", [
    ("Your refund was sent today, sorry for the wait.", 1.0, None),
    ("We will never ask for your password or PIN.", 1.0, None),
    ("Could you confirm the last four digits of your card number?", 1.0, None),
    ("You idiot, read the manual.", 0.0, "blocklist: 'idiot'"),
    ("Shut up and wait like everyone else.", 0.0, "blocklist: 'shut up'"),
    ("I know where you live.", 0.0, "blocklist: 'i know where you live'"),
    ("Please send me your full card number and PIN.", 0.0, "personal data request: 'full card number'"),
    ("What's your online banking password?", 0.0, "personal data request: 'password'"),
    ("Your card 4111 1111 1111 1111 has been blocked.", 0.0, "personal data: a full card number in the reply"),
    ("Your order number is 1234567890123.", 1.0, None),  # not a valid card number (Luhn)
    ("This is bullshit.", 0.0, "profanity classifier: p=1.00 >= 0.50"),
])
def test_ethics_gate_and_reasons(reply, gate, reason):
    e = rewards.make("ethics")
    assert e.kind == "gate"
    assert e([PARCEL], [reply]) == [gate]
    info = e.explain([PARCEL], [reply])[0]
    assert info["safe"] is (gate == 1.0)
    assert info["reason"] == reason
    assert 0.0 <= info["profanity"] <= 1.0


def test_ethics_penalty_mode_and_custom_blocklist():
    p = rewards.make("ethics", mode="penalty")
    assert p.kind == "additive"
    assert p([[]] * 2, ["Happy to help!", "You moron."]) == [0.0, -1.0]
    custom = rewards.EthicsReward(blocklist=["banana split"], use_classifier=False)
    assert custom([[]] * 3, ["I love a Banana  Split.", "You idiot.", "bananas split"]) == [0.0, 1.0, 1.0]
    assert rewards.EthicsReward(extra_blocklist=["competitor"], use_classifier=False)(
        [[]], ["Try our competitor."]) == [0.0]
    with pytest.raises(ValueError, match="mode"):
        rewards.EthicsReward(mode="soft")


@pytest.mark.parametrize("reply,expected", [
    ("", -1.0), ("Sure.", -2 / 3), ("Sure, happy to help.", 0.0), ("word " * 90, -0.5), ("word " * 200, -1.0),
])
def test_length_penalty(reply, expected):
    assert rewards.make("length")([[]], [reply]) == [pytest.approx(expected)]


@pytest.mark.parametrize("reply,n,expected", [
    ("Thanks for waiting, your parcel ships today.", 3, 0.0),
    ("sorry sorry sorry sorry sorry", 2, -0.75),
    ("sorry sorry sorry sorry sorry", 3, -2 / 3),
    ("I can help. I can help. I can help.", 3, -(1 - 3 / 7)),
    ("too short", 3, 0.0),
])
def test_repetition_penalty(reply, n, expected):
    assert rewards.make("repetition", n=n)([[]], [reply]) == [pytest.approx(expected)]


@pytest.mark.parametrize("reply,expected", [
    ("Sure, I can help.", 0.0), ("Is it the blue one?", 0.0), ("It ships on Friday (by courier).", 0.0),
    ("\u597d\u7684\uff0c\u6211\u6765\u5e2e\u60a8\u3002", 0.0),
    ("You can return it within", -1.0), ("Thanks for waiting, your order", -1.0), ("", -1.0), ("   ", -1.0),
])
def test_unfinished_penalty_flags_a_reply_cut_off_mid_sentence(reply, expected):
    penalty = rewards.make("unfinished")
    assert isinstance(penalty, rewards.UnfinishedPenalty) and penalty.bounds == (-1.0, 0.0)
    assert penalty([[]], [reply]) == [expected]


def test_unfinished_penalty_in_a_composite_lowers_only_the_cut_off_reply():
    r = rewards.make_composite({"length": 1.0, "unfinished": 0.5})
    res = r.score([[]] * 2, ["Sure, happy to help.", "Sure, happy to help with your"])
    assert res.components["unfinished"].tolist() == [0.0, -1.0]
    assert res.total[0] - res.total[1] == pytest.approx(0.5)


# --- composite -------------------------------------------------------------------------------------

def test_default_composite_is_the_seeds_reward_gated_by_ethics(minilm):
    assert rewards.DEFAULT_SPEC == {"coherence": 1.0, "sentiment": 1.0, "consistency": 1.0, "ethics": 1.0}
    r = rewards.make_composite(rewards.DEFAULT_SPEC, device="cpu")
    assert r.names == ["coherence", "sentiment", "consistency", "ethics"]
    replies = [POLITE, "You idiot, restart the router.", "Please restart your router."]
    res = r.score([WIFI] * 3, replies, references=["Sorry! Please restart your router.", None, None])
    assert res.total.dtype == np.float32 and res.total.shape == (3,)
    c = res.components
    assert set(c) == set(r.names) and all(v.dtype == np.float32 and v.shape == (3,) for v in c.values())
    ungated = c["coherence"] + c["sentiment"] + c["consistency"]
    np.testing.assert_allclose(res.total[[0, 2]], ungated[[0, 2]], rtol=1e-6)
    assert list(c["ethics"]) == [1.0, 0.0, 1.0]
    # blocklisted reply: the floor, 1 below the lowest sum the parts can produce (0 - 1 - 1)
    assert r.gate_floor == -3.0 and res.total[1] == -3.0
    gate = {"value": 0.0, "total": -3.0, "ungated": pytest.approx(float(ungated[1]), abs=1e-6), "floor": -3.0,
            "reason": "ethics: blocklist: 'idiot'"}
    assert res.details == [{}, {"ethics": "blocklist: 'idiot'", "gate": gate}, {}]
    assert res.item(1)["details"] == {"ethics": "blocklist: 'idiot'", "gate": gate}
    np.testing.assert_array_equal(r([WIFI] * 3, replies, references=["Sorry! Please restart your router.",
                                                                     None, None]), res.total)


def test_weights_ctor_kwargs_gate_key_and_options():
    r = rewards.make({"length": 2.0, "repetition": {"weight": 0.5, "n": 2}})
    assert r.components[1].module.n == 2
    replies = ["sorry sorry sorry sorry sorry", "Sure."]
    res = r.score([[]] * 2, replies)
    length = rewards.make("length")([[]] * 2, replies)
    rep = rewards.make("repetition", n=2)([[]] * 2, replies)
    np.testing.assert_allclose(res.total, [2 * a + 0.5 * b for a, b in zip(length, rep)], rtol=1e-6)
    np.testing.assert_allclose(res.components["repetition"], rep)  # unweighted

    # ctor kwargs reach the constructor; options only where the signature accepts them
    c = rewards.make({"consistency": {"weight": 1.0, "k": 2}, "length": 1.0}, device="cpu")
    assert c.components[0].module.k == 2 and c.components[0].module.device == "cpu"
    with pytest.raises(TypeError, match="length"):
        rewards.make({"length": {"weight": 1.0, "no_such_option": 3}})
    with pytest.raises(TypeError, match="weight"):
        rewards.make({"length": "heavy"})

    # an explicit gate g interpolates between the ungated total and the floor (length's -1, minus 1);
    # weight 0 reports a gate without applying it
    gated = rewards.make({"length": 1.0, "gate": rewards.FunctionReward(_half_gate, name="half")})
    assert gated.components[1].gate and gated.gate_floor == -2.0
    np.testing.assert_allclose(gated([[]] * 2, ["a", "b"]), [0.5 * -2 / 3 + 0.5 * -2.0] * 2, rtol=1e-6)
    assert gated.score([[]], ["a"]).details[0]["gate"]["reason"] == "half = 0.5"
    strict = rewards.make({"length": 1.0, "gate": {"spec": "ethics", "blocklist": ["hold"]}})
    assert strict.names == ["length", "ethics"]
    np.testing.assert_allclose(strict([[]] * 2, ["Hold.", "Wait."]), [-2.0, -2 / 3], rtol=1e-6)
    assert strict.score([[]], ["Please hold on."]).details[0]["ethics"] == "blocklist: 'hold'"
    logged = rewards.make({"length": 1.0, "ethics": 0.0})
    res = logged.score([[]], ["You idiot."])
    assert res.total[0] == pytest.approx(-1 / 3) and res.components["ethics"][0] == 0.0
    # a gate alone gives its own value; a nested composite is a module
    assert list(rewards.make({"ethics": 1.0})([[]] * 2, ["Fine.", "You idiot."])) == [1.0, 0.0]
    nested = rewards.make({rewards.make({"length": 1.0}): 2.0})
    assert nested([[]], [""])[0] == pytest.approx(-2.0)


def _half_gate(contexts, responses):
    return [0.5] * len(responses)


def test_call_module_passes_references_only_to_modules_that_accept_them():
    class Plain:
        name = "plain"

        def __call__(self, contexts, responses):
            return [1.0] * len(responses)

    class WithRefs:
        name = "with_refs"

        def __call__(self, contexts, responses, references=None):
            return [float(r is not None) for r in references]

    class WithKwargs:
        name = "with_kwargs"

        def __call__(self, contexts, responses, **kwargs):
            return [float(len(kwargs["references"]))] * len(responses)

    refs = ["x", None]
    assert rewards.call_module(Plain(), [[]] * 2, ["a", "b"], references=refs) == [1.0, 1.0]
    assert rewards.call_module(WithRefs(), [[]] * 2, ["a", "b"], references=refs) == [1.0, 0.0]
    assert rewards.call_module(WithKwargs(), [[]] * 2, ["a", "b"], references=refs) == [2.0, 2.0]
    res = rewards.make({Plain(): 1.0, WithRefs(): 1.0, WithKwargs(): 1.0}).score([[]] * 2, ["a", "b"], references=refs)
    assert list(res.total) == [4.0, 3.0]


# --- validation: a broken module is an error that names it, never a silent 0 --------------------------

class _Broken:
    def __init__(self, name, out=None, exc=None):
        self.name, self.out, self.exc = name, out, exc

    def __call__(self, contexts, responses):
        if self.exc is not None:
            raise self.exc
        return self.out


@pytest.mark.parametrize("module,match", [
    (_Broken("boom", exc=ZeroDivisionError("division by zero")),
     r"reward module 'boom' \(_Broken\) raised ZeroDivisionError: division by zero"),
    (_Broken("short", out=[1.0, 2.0]), r"'short' returned 2 values for a batch of 3"),
    (_Broken("nan", out=[1.0, float("nan"), 0.0]), r"'nan' returned NaN at index 1"),
    (_Broken("inf", out=np.array([1.0, 2.0, -np.inf])), r"'inf' returned inf at index 2"),
    (_Broken("text", out=[1.0, "good", 0.0]), r"'text' returned a non-numeric value 'good' at index 1"),
    (_Broken("none", out=[None, 1.0, 0.0]), r"'none' returned a non-numeric value None at index 0"),
    (_Broken("scalar", out=1.0), r"'scalar' returned float"),
])
def test_bad_modules_raise_reward_error_naming_the_module(module, match):
    r = rewards.make({"length": 1.0, module: 1.0})
    with pytest.raises(RewardError, match=match) as info:
        r.score([[]] * 3, ["a", "b", "c"])
    assert isinstance(info.value, RuntimeError)
    if module.exc is not None:
        assert info.value.__cause__ is module.exc


def test_good_outputs_of_various_types_are_accepted():
    import torch

    for out in ([1, 0, 1], (1.0, 0.5, 0.0), np.array([1.0, 0.5, 0.0], dtype=np.float32), torch.tensor([1.0, 0.5, 0.0]),
                np.array([[1.0], [0.5], [0.0]]), [True, False, True]):
        res = rewards.make({_Broken("ok", out=out): 1.0}).score([[]] * 3, ["a", "b", "c"])
        assert res.total.shape == (3,)


# --- pickling --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(rewards.BUILTINS))
def test_every_builtin_pickles_after_use(name, minilm):
    m = rewards.make(name, device="cpu")
    ctx, replies, refs = [WIFI, PARCEL], ["Please restart the router.", "You idiot."], ["Restart it.", None]
    before = rewards.call_module(m, ctx, replies, references=refs)
    blob = pickle.dumps(m)
    assert len(blob) < 20_000  # no model, lexicon or compiled classifier inside
    again = pickle.loads(blob)
    assert list(rewards.call_module(again, ctx, replies, references=refs)) == pytest.approx(list(before), abs=1e-6)


def test_composite_filter_checks_and_trl_function_pickle(minilm):
    r = rewards.make_composite(dict(rewards.DEFAULT_SPEC, length=0.5), device="cpu")
    replies = [POLITE, "You idiot."]
    before = r.score([WIFI, PARCEL], replies)
    again = pickle.loads(pickle.dumps(r))
    np.testing.assert_allclose(again.score([WIFI, PARCEL], replies).total, before.total, rtol=1e-6)
    f = pickle.loads(pickle.dumps(rewards.EthicsFilter(fallback="Sorry.")))
    assert f.apply([[]], ["Shut up."])[0].replaced
    checks = pickle.loads(pickle.dumps(rewards.PostProcessChecks(device="cpu")))
    assert checks.check([WIFI], [RUDE])[0].flagged
    trl_fn = pickle.loads(pickle.dumps(rewards.to_trl("length")))
    assert trl_fn.__name__ == "length" and trl_fn(prompts=["hi"], completions=["Sure thing, happy to help."]) == [0.0]


# --- ethics filter and post-processing checks ------------------------------------------------------

def test_ethics_filter_replaces_exactly_what_the_gate_zeroes():
    replies = ["Your refund is on its way.", "Shut up.", "Please send me your full card number.",
               "We never ask for your PIN.", "This is bullshit."]
    results = rewards.EthicsFilter(fallback="Sorry, let me get a colleague.").apply([PARCEL] * 5, replies)
    gate = rewards.make("ethics")([PARCEL] * 5, replies)
    reasons = [d["reason"] for d in rewards.make("ethics").explain([PARCEL] * 5, replies)]
    assert [r.replaced for r in results] == [g == 0.0 for g in gate] == [False, True, True, False, True]
    assert [r.reason for r in results] == reasons
    assert results[0] == rewards.FilterResult("Your refund is on its way.", False, None)
    assert results[1].text == "Sorry, let me get a colleague." and results[1].reason == "blocklist: 'shut up'"

    seen = []

    def fallback(context, response, reason):
        seen.append((context, response, reason))
        return f"[removed: {reason}]"

    out = rewards.EthicsFilter(fallback=fallback, profanity_threshold=0.9).apply([WIFI], ["You moron."])
    assert out[0].text == "[removed: blocklist: 'moron']" and seen == [(WIFI, "You moron.", "blocklist: 'moron'")]


def test_post_process_checks_flag_but_do_not_replace(minilm):
    checks = rewards.PostProcessChecks(device="cpu")
    good, bad = checks.check([WIFI, WIFI], ["Sorry about that! Please restart the router and check the cable.",
                                            "I hate bananas, they are disgusting."])
    assert not good.flagged and good.reasons == ()
    assert bad.flagged
    assert bad.reasons[0].startswith("sentiment ") and "< floor -0.05" in bad.reasons[0]
    assert bad.reasons[1].startswith("relevance ") and "< floor 0.15" in bad.reasons[1]
    assert bad.sentiment < 0 < good.sentiment and bad.relevance < good.relevance
    only_sentiment = rewards.PostProcessChecks(relevance_floor=None, sentiment_floor=0.0)
    r = only_sentiment.check([[]], ["The parcel is late."])[0]
    assert r.flagged is False and np.isnan(r.relevance)


# --- TRL adapter -----------------------------------------------------------------------------------

def _trl_calculate_rewards(reward_fn, inputs, completions):
    """Run TRL's own GRPOTrainer._calculate_rewards (the code that calls reward functions) on a stand-in
    trainer, so the adapter is called exactly as in training."""
    import torch
    from trl.trainer.grpo_trainer import GRPOTrainer
    from trl.trainer.utils import get_callable_name

    metrics = []
    fake = SimpleNamespace(
        accelerator=SimpleNamespace(device=torch.device("cpu"), is_main_process=True),
        reward_funcs=[reward_fn], reward_processing_classes=[None], reward_func_names=[get_callable_name(reward_fn)],
        state=SimpleNamespace(global_step=0), args=SimpleNamespace(report_to=[]),
        _log_completion_extra=lambda column, values: None,
        _log_metric=lambda name, value: metrics.append((name, value)), environments=None)
    prompts = [x["prompt"] for x in inputs]
    completion_ids = [[1, 2, 3] for _ in completions]
    out = GRPOTrainer._calculate_rewards(fake, inputs, prompts, completions, completion_ids)
    return out, metrics, get_callable_name(reward_fn)


def test_to_trl_standard_format():
    fn = rewards.to_trl("coherence")
    inputs = [{"prompt": "Where is my parcel?", "reference": "It arrives today."},
              {"prompt": "Where is my parcel?", "reference": None}]
    completions = ["It arrives today.", "Where is my parcel? Today."]
    out, _, name = _trl_calculate_rewards(fn, inputs, completions)
    assert name == "coherence"
    assert out.shape == (2, 1)
    direct = rewards.make("coherence")([[{"role": "user", "content": "Where is my parcel?"}]] * 2, completions,
                                       references=["It arrives today.", None])
    assert out[0, 0].item() == pytest.approx(1.0)
    assert out[:, 0].tolist() == pytest.approx(direct, abs=1e-6)


def test_to_trl_conversational_format_with_a_composite(minilm):
    spec = {"coherence": 1.0, "sentiment": 1.0, "ethics": 1.0}
    fn = rewards.to_trl(spec, device="cpu")
    prompt = [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "My wifi keeps dropping."}]
    inputs = [{"prompt": prompt, "answer": "Please restart the router."} for _ in range(3)]
    texts = ["Please restart the router.", "You idiot, restart it.", "Sorry! Please restart the router."]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    out, metrics, name = _trl_calculate_rewards(fn, inputs, completions)
    expected = rewards.make_composite(spec).score([prompt] * 3, texts, references=["Please restart the router."] * 3)
    assert out[:, 0].tolist() == pytest.approx(expected.total.tolist(), abs=1e-6)
    assert out[1, 0].item() == rewards.make_composite(spec).gate_floor == -2.0  # gated by ethics: 0 - 1 - 1
    assert name == "reward"
    logged = dict(metrics)
    assert logged["rewards/reward/sentiment"] == pytest.approx(float(expected.components["sentiment"].mean()))
    assert set(logged) == {f"rewards/reward/{n}" for n in ("coherence", "sentiment", "ethics")}


def test_to_trl_errors_name_the_module():
    fn = rewards.to_trl(_Broken("flaky", out=[float("nan")]))
    with pytest.raises(RewardError, match="'flaky' returned NaN at index 0"):
        fn(prompts=["hi"], completions=["hello"], completion_ids=[[1]], trainer_state=None)

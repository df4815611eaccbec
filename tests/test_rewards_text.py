"""The fast re-implementations give the reference libraries' numbers: BLEU (sacrebleu), ROUGE-L (rouge-score),
the profanity probability (alt-profanity-check), and the LCS against a plain DP table."""

from __future__ import annotations

import random

import numpy as np
import pytest

from rewards import textmetrics as tm
from rewards.bench import build_batch

PIECES = ("the a I you we refund order parcel it's can't don't 3.14 1,000 2019-2020 5-7 email@x.com (yes) "
          "\"quoted\" &amp; &lt;b&gt; end. end, Hello! what? ok: semi; - -- / \\ # $5 50% café naïve Straße "
          "x-ray A.B.C. U.S. e.g., tab\t new\nline <skipped> don't-stop 😀 £20").split(" ")
PIECES += ["  ", "-\n", "\n", ".", ",", "...", " . ", " , ", "., ,.", "1.", ".2", "3,", ",4", "5-", "-6", " - ", "a.b"]

HANDPICKED = [
    ("It is out for delivery and will arrive today.", "It is out for delivery and will arrive today."),
    ("", ""), ("", "Reference only."), ("Hypothesis only.", ""), ("Short.", "Short."), ("a", "a"),
    ("Sorry, your parcel is delayed.", "Your parcel is delayed, sorry!"),
    ("The the the the the the", "the cat sat on the mat"),
    ("Refund of £20.50 on 12/03/2024 (ref #A-19).", "Your £20.50 refund (ref #A-19) went out on 12/03/2024."),
    ("I can't log in; it says 'error 0x80'.", "If you can't log in and see error 0x80, reset the app."),
]


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) + rng.choice([" ", "", "  "]) for _ in range(rng.randint(0, 30)))


def _pairs(n: int, seed: int = 0):
    rng = random.Random(seed)
    pairs = list(HANDPICKED)
    for _ in range(n):
        h, r = _random_text(rng), _random_text(rng)
        if rng.random() < 0.1:
            r = h
        pairs.append((h, r))
    ctx, replies, refs = build_batch(64)
    pairs += [(h, r or ctx[i][-1]["content"]) for i, (h, r) in enumerate(zip(replies, refs))]
    return pairs


def test_bleu_equals_sacrebleu_sentence_bleu():
    import sacrebleu

    tm.clear_caches()
    for h, r in _pairs(1500):
        assert tm.sentence_bleu(h, r) == sacrebleu.sentence_bleu(h, [r]).score, (h, r)


def test_rouge_l_equals_rouge_score():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for h, r in _pairs(1500, seed=1):
        assert tm.rouge_l_f1(h, r) == scorer.score(r, h)["rougeL"].fmeasure, (h, r)


def test_bit_parallel_lcs_equals_the_dp_table():
    rng = random.Random(2)

    def dp(a, b):
        t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                t[i][j] = t[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(t[i - 1][j], t[i][j - 1])
        return t[-1][-1]

    for _ in range(2000):
        alphabet = "abcdef"[: rng.randint(1, 6)]
        a = tuple(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        b = tuple(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        assert tm.lcs_length(a, b) == dp(a, b), (a, b)


def test_coherence_fast_and_reference_implementations_agree():
    from rewards import CoherenceReward

    ctx, replies, refs = build_batch(200)
    fast = CoherenceReward(impl="fast")(ctx, replies, references=refs)
    ref = CoherenceReward(impl="reference")(ctx, replies, references=refs)
    assert fast == ref
    assert len(set(fast)) > 20  # varied inputs, varied scores


def test_fast_profanity_equals_alt_profanity_check():
    from rewards.profanity import fast_profanity, reference_predict_prob

    rng = random.Random(3)
    _, replies, _ = build_batch(120)
    texts = replies + [_random_text(rng) for _ in range(100)] + [
        "", "!!!", "You are an idiot.", "What the hell do you want?", "This damn router is broken.",
        "This is bullshit", "Go to hell", "Shut up", "Your bloody parcel arrived.", "I love you", "FUCK", "Idiot"]
    expected = reference_predict_prob(texts)
    got = fast_profanity().predict_prob(texts)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert (expected > 0.5).sum() >= 8 and (expected < 0.5).sum() >= 100  # both sides of the threshold
    for t in texts[-12:]:  # one at a time too
        assert fast_profanity().predict_prob([t])[0] == pytest.approx(reference_predict_prob([t])[0], abs=1e-12)


def test_ethics_fast_and_reference_implementations_agree():
    from rewards import EthicsReward

    ctx, replies, _ = build_batch(200)
    fast = EthicsReward(impl="fast").explain(ctx, replies)
    ref = EthicsReward(impl="reference").explain(ctx, replies)
    assert [d["reason"] for d in fast] == [d["reason"] for d in ref]
    np.testing.assert_allclose([d["profanity"] for d in fast], [d["profanity"] for d in ref], atol=1e-12)
    assert 0 < sum(not d["safe"] for d in fast) < len(fast)

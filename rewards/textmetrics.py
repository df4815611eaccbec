"""Fast sentence BLEU and ROUGE-L, numerically identical to sacrebleu and rouge-score.

The reference libraries cost ~60-130 us per pair in Python object overhead (a metric object, a Counter of
n-gram tuples, an O(n*m) LCS table). The reward loop scores thousands of pairs per step, so this module
re-implements exactly the same definitions with less overhead:

- :func:`sentence_bleu` == ``sacrebleu.sentence_bleu(hyp, [ref]).score`` (13a tokenisation, n-grams up to
  4, 'exp' smoothing (NIST / Chen & Cherry method 3), effective order, brevity penalty), in [0, 100];
- :func:`rouge_l_f1` == ``rouge_scorer.RougeScorer(["rougeL"]).score(ref, hyp)["rougeL"].fmeasure``
  (lower-case, non-alphanumerics to spaces, no stemming), in [0, 1], with the LCS length computed by the
  bit-parallel algorithm of Hyyro (2004) over Python integers instead of a DP table.

Tokenisations are cached (a reference or a previous turn is usually shared by many responses).
``tests/test_rewards_text.py`` checks equality against both libraries on varied inputs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

__all__ = ["bleu_tokenize", "char_tokenize", "clear_caches", "lcs_length", "rouge_l_f1", "rouge_l_f1_chars",
           "rouge_tokenize", "sentence_bleu", "sentence_bleu_zh"]

MAX_ORDER = 4

# --- 13a tokenisation (mteval-v13a, as used by WMT and sacrebleu's default) -------------------------
# 1. pad every "symbol" character with spaces: ! " # $ % & ( ) * + / : ; < = > ? @ [ \ ] ^ _ ` { | } ~
#    (the apostrophe and the hyphen are kept inside words). mteval's class also contains the space
#    itself; padding a space with spaces changes nothing once whitespace is collapsed, and leaving it
#    out makes this substitution ~20x faster.
_SYMBOLS = re.compile(r"([!-&(-+/:-@\[-`{-~])")
# 2. split '.' and ',' off unless they sit between digits (3.14, 1,000)
_PUNCT_AFTER_NONDIGIT = re.compile(r"([^0-9])([.,])")
_PUNCT_BEFORE_NONDIGIT = re.compile(r"([.,])([^0-9])")
# 3. split a hyphen that follows a digit (2019-2020 -> 2019 - 2020)
_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")


@lru_cache(maxsize=1 << 16)
def bleu_tokenize(text: str) -> tuple[str, ...]:
    """13a tokens of ``text`` (after sacrebleu's ``rstrip``)."""
    line = text.rstrip()
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    line = _SYMBOLS.sub(r" \1 ", line)
    if "." in line or "," in line:
        line = _PUNCT_AFTER_NONDIGIT.sub(r"\1 \2 ", line)
        line = _PUNCT_BEFORE_NONDIGIT.sub(r" \1 \2", line)
    if "-" in line:
        line = _DASH_AFTER_DIGIT.sub(r"\1 \2 ", line)
    return tuple(line.split())


def _ngram_counts(tokens: tuple[str, ...]) -> list[Counter]:
    # counts[n-1] = Counter of the n-grams of order n, as tuples
    return [Counter(zip(*(tokens[i:] for i in range(n)))) for n in range(1, MAX_ORDER + 1)]


@lru_cache(maxsize=1 << 14)
def _reference_ngrams(text: str) -> tuple[int, list[Counter]]:
    tokens = bleu_tokenize(text)
    return len(tokens), _ngram_counts(tokens)


def sentence_bleu(hypothesis: str, reference: str) -> float:
    """Sentence BLEU of ``hypothesis`` against one ``reference``, in [0, 100].

    BLEU = BP * exp(mean_{n <= N_eff} log p_n), BP = min(1, exp(1 - r/c)); p_n = matched / total n-grams,
    a zero match count replaced by 1 / (2^k * total) for the k-th such order ('exp' smoothing); N_eff is
    the largest order the hypothesis has n-grams of (effective order); 0 when nothing matches.
    """
    hyp = bleu_tokenize(hypothesis)
    sys_len = len(hyp)
    ref_len, ref_counts = _reference_ngrams(reference)

    correct = [0] * MAX_ORDER
    total = [0] * MAX_ORDER
    for n in range(1, min(MAX_ORDER, sys_len) + 1):
        ref_n = ref_counts[n - 1]
        hyp_n = Counter(zip(*(hyp[i:] for i in range(n))))
        total[n - 1] = sys_len - n + 1
        if ref_n:
            c = 0
            for gram in hyp_n.keys() & ref_n.keys():  # clipped counts: min(count_hyp, count_ref)
                h, r = hyp_n[gram], ref_n[gram]
                c += h if h < r else r
            correct[n - 1] = c

    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        bp = 1.0
    if not any(correct):
        return 0.0

    smooth = 1.0
    log_sum = 0.0
    eff_order = 0
    for n in range(1, MAX_ORDER + 1):
        if total[n - 1] == 0:
            break
        eff_order = n
        if correct[n - 1] == 0:
            smooth *= 2
            p = 100.0 / (smooth * total[n - 1])
        else:
            p = 100.0 * correct[n - 1] / total[n - 1]
        log_sum += math.log(p) if p > 0.0 else -9999999999
    return bp * math.exp(log_sum / eff_order)


# --- ROUGE-L ---------------------------------------------------------------------------------------
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=1 << 16)
def rouge_tokenize(text: str) -> tuple[str, ...]:
    """rouge-score's default tokens: lower-case, every run of non-[a-z0-9] is a separator, no stemming."""
    return tuple(_NON_ALNUM.sub(" ", text.lower()).split())


@lru_cache(maxsize=1 << 14)
def _position_masks(tokens: tuple[str, ...]) -> dict[str, int]:
    masks: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    return masks


def lcs_length(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """Length of the longest common subsequence of ``a`` and ``b`` (bit-parallel, O(len(b)) big-int ops).

    Bit i of ``v`` is 0 where the LCS table's row increases at column i (Hyyro 2004):
    v <- (v + u) | (v - u) with u = v & match_mask(token); LCS = number of zero bits.
    """
    if not a or not b:
        return 0
    masks = _position_masks(a)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        m = masks.get(tok)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_f1(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 of ``hypothesis`` against ``reference`` in [0, 1]: 2PR / (P + R) with
    P = LCS / len(hyp), R = LCS / len(ref) over rouge-score tokens; 0 if either side has no tokens."""
    ref = rouge_tokenize(reference)
    hyp = rouge_tokenize(hypothesis)
    if not ref or not hyp:
        return 0.0
    lcs = lcs_length(ref, hyp)
    precision = lcs / len(hyp)
    recall = lcs / len(ref)
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


# --- Chinese ----------------------------------------------------------------------------------------
# Chinese has no spaces, so a word tokeniser would count a whole clause as one token. BLEU uses sacrebleu's own
# "zh" tokenisation (each CJK character a token, other text as 13a); ROUGE-L counts characters the same way.
_CHAR_TOKENS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]|[a-z0-9]+")


@lru_cache(maxsize=1 << 16)
def char_tokenize(text: str) -> tuple[str, ...]:
    """Tokens for character-level ROUGE on Chinese: each CJK character, and each run of Latin letters / digits
    (lower-cased); punctuation and spaces are dropped."""
    return tuple(_CHAR_TOKENS.findall(text.lower()))


def rouge_l_f1_chars(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 over :func:`char_tokenize` tokens (character-level for Chinese), in [0, 1]."""
    ref, hyp = char_tokenize(reference), char_tokenize(hypothesis)
    if not ref or not hyp:
        return 0.0
    lcs = lcs_length(ref, hyp)
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


@lru_cache(maxsize=1)
def _zh_bleu():
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize="zh", effective_order=True)


def sentence_bleu_zh(hypothesis: str, reference: str) -> float:
    """``sacrebleu`` sentence BLEU with its ``zh`` tokenisation ('exp' smoothing, effective order), in [0, 100]."""
    return _zh_bleu().sentence_score(hypothesis, [reference]).score


def clear_caches() -> None:
    """Forget cached tokenisations (the benchmark calls this so repeated runs measure the real work)."""
    for fn in (bleu_tokenize, _reference_ngrams, rouge_tokenize, _position_masks, char_tokenize):
        fn.cache_clear()

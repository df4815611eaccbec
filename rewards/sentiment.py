"""``sentiment``: how positive the reply sounds (VADER offline, or any HF text-classification model)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .base import Context

__all__ = ["SentimentReward", "label_value", "snownlp_positive", "vader_analyzer"]


@functools.cache
def vader_analyzer():
    """The process-wide VADER analyser (its lexicon loads once, ~50 ms)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def snownlp_positive(texts: Sequence[str]) -> list[float]:
    """P(positive) of each Chinese text from snownlp's naive Bayes sentiment model (shipped inside the ``snownlp``
    package, MIT licence, trained on Chinese product reviews; loaded from its data files, offline)."""
    from snownlp import sentiment

    return [sentiment.classify(t) if t.strip() else 0.5 for t in texts]


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

    Default (``model=None``): VADER's compound score, computed offline from its lexicon and rules::

        r = compound(reply) = s / sqrt(s^2 + 15),  s = sum of rule-adjusted word valences   in [-1, 1]

    (-1 most negative, 0 neutral or empty, +1 most positive; VADER calls >= 0.05 positive and <= -0.05
    negative). ``scale="unit"`` maps it to [0, 1] as (r + 1) / 2.

    ``language="zh"`` (chosen by a Chinese dataset; ``model=None``): snownlp's Chinese sentiment model
    (:func:`snownlp_positive`), ``r = 2 * P(positive) - 1`` in [-1, 1] (0 for an empty reply). VADER's lexicon is
    English and scores Chinese text 0.

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
                 label_map: Mapping[str, float] | None = None, batch_size: int = 64, language: str = "en"):
        if scale not in ("signed", "unit"):
            raise ValueError(f"sentiment: scale must be 'signed' or 'unit', got {scale!r}")
        if language not in ("en", "zh"):
            raise ValueError(f"sentiment: language must be 'en' or 'zh', got {language!r}")
        self.language = language
        self.model = model
        self.device = None if device is None else str(device)
        self.scale = scale
        self.bounds = (-1.0, 1.0) if scale == "signed" else (0.0, 1.0)
        self.label_map = dict(label_map) if label_map else None
        self.batch_size = batch_size
        self._pipe = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pipe"] = None  # reloaded lazily after unpickling
        return state

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str], **kwargs: Any) -> list[float]:
        if self.model is None and self.language == "zh":
            values = [2.0 * p - 1.0 for p in snownlp_positive([r or "" for r in responses])]
        elif self.model is None:
            polarity = vader_analyzer().polarity_scores
            values = [polarity(r)["compound"] if r else 0.0 for r in responses]
        else:
            values = self._classify(list(responses))
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
        return f"SentimentReward(model={self.model!r}, scale={self.scale!r}{lang})"

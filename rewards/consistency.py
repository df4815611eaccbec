"""``consistency``: semantic similarity (all-MiniLM-L6-v2) between the reply and the recent conversation."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .base import Context, message_text
from .embeddings import DEFAULT_BATCH_SIZE, embed_unique

__all__ = ["ConsistencyReward", "char_ngram_cosine", "recent_turns"]

_SKIP = re.compile(r"[\s\W_]+")


def _char_ngrams(text: str, n: int) -> Counter:
    s = _SKIP.sub("", text.lower())
    return Counter(s[i:i + n] for i in range(max(len(s) - n + 1, 0)))


def char_ngram_cosine(a: str, b: str, n: int = 2) -> float:
    """Cosine of the character ``n``-gram count vectors of ``a`` and ``b`` (spaces and punctuation dropped), in
    [0, 1]; 0 when either has no n-gram. Script-agnostic: it needs no tokeniser and no model, and measures shared
    wording, not meaning (a paraphrase with other characters scores low)."""
    x, y = _char_ngrams(a, n), _char_ngrams(b, n)
    if not x or not y:
        return 0.0
    dot = sum(v * y[g] for g, v in x.items() if g in y)
    return dot / math.sqrt(sum(v * v for v in x.values()) * sum(v * v for v in y.values()))


def recent_turns(context: Context, k: int, include_system: bool = False) -> list[str]:
    """Texts of the last ``k`` non-empty turns of ``context`` (system messages skipped unless asked)."""
    out: list[str] = []
    for message in reversed(context):
        if not include_system and message.get("role") == "system":
            continue
        text = message_text(message)
        if text.strip():
            out.append(text)
            if len(out) == k:
                break
    out.reverse()
    return out


class ConsistencyReward:
    """Does the reply stay on the conversation's topic?

    With unit MiniLM embeddings ``e(.)`` and the last ``k`` turns ``u_1..u_m`` of the context (m <= k,
    system prompts skipped)::

        r = (1/m) * sum_j cos(e(reply), e(u_j))      in [-1, 1]; 0.0 when the context has no turns

    (MiniLM cosines of unrelated English sentences sit around 0-0.2; on-topic replies around 0.4-0.8).
    Every distinct text in the batch -- replies and turns -- is embedded once (contexts shared by several
    replies, or turns shared by several contexts, cost nothing extra), in one batched call on ``device``;
    context turns are also kept in a process-wide LRU (:data:`rewards.embeddings.TURN_CACHE_SIZE`), since
    dataset prompts recur across episodes (``cache_turns=False`` turns it off); replies are never cached.
    ``method="char_ngram"`` (the default for ``language="zh"``): the same mean over the last ``k`` turns of
    :func:`char_ngram_cosine` (character bigrams), in [0, 1]; no model. MiniLM is English-only: on Chinese its
    cosines hardly separate on-topic from off-topic replies (measured in rewards/README.md, "Chinese").

    The model is loaded lazily and cached per process (:mod:`rewards.embeddings`); the module pickles
    without it.

    Example::

        >>> c = ConsistencyReward(device="cpu")
        >>> ctx = [{"role": "user", "content": "My router keeps dropping the wifi connection every evening."}]
        >>> on, off = c([ctx, ctx], ["Let's fix your wifi: please restart the router and check the cable.",
        ...                          "Our bakery has fresh croissants on Sundays."])
        >>> on > off
        True
    """

    name = "consistency"
    kind = "additive"
    bounds = (-1.0, 1.0)  # a mean of cosines (float rounding past +-1 is clipped by the composite)

    def __init__(self, k: int = 3, device: Any = None, include_system: bool = False,
                 model_path: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE, cache_turns: bool = True,
                 language: str = "en", method: str | None = None):
        if k < 1:
            raise ValueError(f"consistency: k must be >= 1, got {k}")
        if language not in ("en", "zh"):
            raise ValueError(f"consistency: language must be 'en' or 'zh', got {language!r}")
        method = method or ("char_ngram" if language == "zh" else "embedding")
        if method not in ("embedding", "char_ngram"):
            raise ValueError(f"consistency: method must be 'embedding' or 'char_ngram', got {method!r}")
        self.language = language
        self.method = method
        self.k = int(k)
        self.device = None if device is None else str(device)
        self.include_system = include_system
        self.model_path = model_path
        self.batch_size = batch_size
        self.cache_turns = cache_turns

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str], **kwargs: Any) -> list[float]:
        B = len(responses)
        if len(contexts) != B:
            raise ValueError(f"consistency: {len(contexts)} contexts for {B} responses")
        if B == 0:
            return []
        turns = [recent_turns(ctx, self.k, self.include_system) for ctx in contexts]
        if self.method == "char_ngram":
            return [sum(char_ngram_cosine(r, t) for t in ts) / len(ts) if ts else 0.0
                    for r, ts in zip(responses, turns)]
        texts = list(responses)
        for ts in turns:
            texts.extend(ts)
        cacheable = {t for ts in turns for t in ts} if self.cache_turns else ()
        emb, index = embed_unique(texts, self.model_path, self.device, self.batch_size, cacheable)  # (U, D)

        import torch

        # padded (B, k) index of each item's turns, with a mask for contexts shorter than k
        turn_idx = torch.zeros(B, self.k, dtype=torch.long)
        mask = torch.zeros(B, self.k, dtype=emb.dtype)
        for i, ts in enumerate(turns):
            for j, t in enumerate(ts):
                turn_idx[i, j] = index[t]
                mask[i, j] = 1.0
        resp_idx = torch.tensor([index[r] for r in responses], dtype=torch.long)
        turn_idx, mask, resp_idx = turn_idx.to(emb.device), mask.to(emb.device), resp_idx.to(emb.device)
        r = emb[resp_idx]  # (B, D)
        u = emb[turn_idx]  # (B, k, D)
        cos = torch.einsum("bd,bkd->bk", r, u)  # (B, k)
        count = mask.sum(-1)  # (B,)
        sim = (cos * mask).sum(-1) / count.clamp(min=1.0)  # (B,), 0 where the context has no turns
        return sim.double().cpu().tolist()

    def __repr__(self) -> str:
        method = f", method={self.method!r}" if self.method != "embedding" else ""
        return f"ConsistencyReward(k={self.k}, device={self.device!r}{method})"

"""``length``, ``repetition`` and ``unfinished``: cheap shaping penalties (always <= 0)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .base import Context
from .coherence import ends_sentence

__all__ = ["LengthPenalty", "RepetitionPenalty", "UnfinishedPenalty"]

_WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")


class LengthPenalty:
    """Penalise replies whose word count ``n`` falls outside ``[min_words, max_words]``::

        r = 0                                        if min_words <= n <= max_words
        r = -(min_words - n) / min_words             if n < min_words   (an empty reply: -1)
        r = -min(1, (n - max_words) / max_words)     if n > max_words   (twice too long: -1)

    Range [-1, 0]. Words are whitespace-separated tokens. Example::

        >>> LengthPenalty(min_words=4, max_words=10)([[]] * 3, ["", "Sure, I can help.", "word " * 15])
        [-1.0, 0.0, -0.5]
    """

    name = "length"
    kind = "additive"
    bounds = (-1.0, 0.0)

    def __init__(self, min_words: int = 3, max_words: int = 60):
        if min_words < 0 or max_words < max(min_words, 1):
            raise ValueError(f"length: need 0 <= min_words <= max_words and max_words >= 1, "
                             f"got {min_words}, {max_words}")
        self.min_words = int(min_words)
        self.max_words = int(max_words)

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str], **kwargs: Any) -> list[float]:
        lo, hi = self.min_words, self.max_words
        out = []
        for r in responses:
            n = len(r.split())
            if n < lo:
                out.append(-(lo - n) / lo)
            elif n > hi:
                out.append(-min(1.0, (n - hi) / hi))
            else:
                out.append(0.0)
        return out

    def __repr__(self) -> str:
        return f"LengthPenalty(min_words={self.min_words}, max_words={self.max_words})"


class RepetitionPenalty:
    """Penalise repeated word n-grams (degenerate loops such as "the the the" or a phrase said twice)::

        r = -(1 - distinct_ngrams / total_ngrams)      over lower-cased word n-grams, n = ``n`` (default 3)

    Range [-1, 0): 0 when no n-gram repeats (or the reply has fewer than ``n`` words), close to -1 for a
    reply that loops on one n-gram. Example::

        >>> RepetitionPenalty(n=2)([[]] * 2, ["thanks for waiting", "sorry sorry sorry sorry sorry"])
        [0.0, -0.75]
    """

    name = "repetition"
    kind = "additive"
    bounds = (-1.0, 0.0)

    def __init__(self, n: int = 3):
        if n < 1:
            raise ValueError(f"repetition: n must be >= 1, got {n}")
        self.n = int(n)

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str], **kwargs: Any) -> list[float]:
        n = self.n
        out = []
        for r in responses:
            words = _WORD.findall(r.lower())
            total = len(words) - n + 1
            if total <= 1:
                out.append(0.0)
                continue
            distinct = len(set(zip(*(words[i:] for i in range(n))))) if n > 1 else len(set(words))
            out.append(distinct / total - 1.0)  # = -(1 - distinct / total), without a -0.0
        return out

    def __repr__(self) -> str:
        return f"RepetitionPenalty(n={self.n})"


class UnfinishedPenalty:
    """Penalise a reply that does not end a sentence (cut off at the token limit)::

        r = -1     if not ends_sentence(reply)      (rewards.coherence.ends_sentence: last character . ! ? ... 。！？)
        r =  0     otherwise

    Range [-1, 0]; an empty reply scores -1. The text-level counterpart of TRL's ``missing_eos_penalty`` (which
    looks for the end token): a reply that stops at ``max_new_tokens`` mid-sentence reads as cut off to a person
    and to a preference reward model, and this gives PPO that signal without the reward model's noise. Added to the
    learned reward (README, "Reward hacking", runs A6 and A7) it made the policy finish more replies but did not
    raise the reward model's score on average over two seeds. Example::

        >>> UnfinishedPenalty()([[]] * 3, ["Sure, I can help.", "You can return it within", ""])
        [0.0, -1.0, -1.0]
    """

    name = "unfinished"
    kind = "additive"
    bounds = (-1.0, 0.0)

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str], **kwargs: Any) -> list[float]:
        return [0.0 if ends_sentence(r) else -1.0 for r in responses]

    def __repr__(self) -> str:
        return "UnfinishedPenalty()"

"""After generation: the ethics filter (replaces unsafe replies) and the seed's post-processing checks (flag)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .base import Context
from .consistency import ConsistencyReward
from .ethics import EthicsReward
from .ethics_profiles import get_profile
from .sentiment import SentimentReward

__all__ = ["CheckResult", "DEFAULT_FALLBACK", "EthicsFilter", "FilterResult", "PostProcessChecks"]

DEFAULT_FALLBACK = ("I'm sorry, I can't help with that in this way. Let me connect you with a member of our "
                    "team who can help you further.")


@dataclass(frozen=True)
class FilterResult:
    """One filtered reply: the text to show, whether it was replaced, and why (None when it was kept)."""

    text: str
    replaced: bool
    reason: str | None = None


class EthicsFilter:
    """Apply the ethics judgement after generation: unsafe replies are replaced by ``fallback``.

    Uses exactly the judgement of the ``ethics`` reward (:meth:`rewards.EthicsReward.judge`), so a reply the
    reward gates (value 0) is a reply the filter replaces. ``fallback`` is a string (default: the ethics profile's
    fallback, else :data:`DEFAULT_FALLBACK`), or a callable
    ``fallback(context, response, reason) -> str``. Other keyword arguments configure the judgement
    (``blocklist``, ``extra_blocklist``, ``profanity_threshold``, ...), or pass ``ethics=EthicsReward(...)``.

    Example::

        >>> f = EthicsFilter(fallback="Sorry, let me get a colleague.")
        >>> ctx = [{"role": "user", "content": "Hi"}]
        >>> f.apply([ctx, ctx], ["Hello! How can I help?", "Shut up."])[1]
        FilterResult(text='Sorry, let me get a colleague.', replaced=True, reason="blocklist: 'shut up'")
    """

    def __init__(self, fallback: str | Callable[[Context, str, str], str] | None = None,
                 ethics: EthicsReward | None = None, **ethics_kwargs: Any):
        if ethics is not None and ethics_kwargs:
            raise TypeError("pass either ethics= or ethics options, not both")
        self.ethics = ethics if ethics is not None else EthicsReward(**ethics_kwargs)
        if fallback is None:  # the profile's own words (e.g. Chinese for customer_service_zh), else DEFAULT_FALLBACK
            prof = get_profile(self.ethics.profile)
            fallback = prof.fallback if prof is not None and prof.fallback else DEFAULT_FALLBACK
        self.fallback = fallback

    def apply(self, contexts: Sequence[Context], responses: Sequence[str]) -> list[FilterResult]:
        if len(contexts) != len(responses):
            raise ValueError(f"ethics filter: {len(contexts)} contexts for {len(responses)} responses")
        out = []
        for ctx, resp, verdict in zip(contexts, responses, self.ethics.judge(responses, contexts)):
            if verdict.safe:
                out.append(FilterResult(resp, False, None))
            else:
                text = self.fallback(ctx, resp, verdict.reason) if callable(self.fallback) else self.fallback
                out.append(FilterResult(text, True, verdict.reason))
        return out

    __call__ = apply

    def __repr__(self) -> str:
        return f"EthicsFilter(fallback={self.fallback!r:.40}, ethics={self.ethics!r})"


@dataclass(frozen=True)
class CheckResult:
    """Post-processing checks of one reply: ``flagged`` with ``reasons``, and the measured values."""

    flagged: bool
    reasons: tuple[str, ...]
    sentiment: float
    relevance: float


class PostProcessChecks:
    """The seed's post-processing checks. They flag a reply (with reasons); they never replace it.

    - sentiment floor: VADER compound (:class:`rewards.SentimentReward`) ``< sentiment_floor`` (default
      -0.05, VADER's own "negative" cut-off) -> ``"sentiment -0.62 < floor -0.05"``;
    - semantic relevance: MiniLM cosine between the reply and the last ``k`` turns of the context
      (:class:`rewards.ConsistencyReward`) ``< relevance_floor`` (default 0.15) -> ``"relevance 0.03 <
      floor 0.15"``. ``relevance_floor=None`` skips the embedding model altogether.

    Example::

        >>> checks = PostProcessChecks(device="cpu")
        >>> ctx = [{"role": "user", "content": "My parcel has not arrived yet."}]
        >>> r = checks.check([ctx], ["Bananas are yellow and I hate them."])[0]
        >>> r.flagged, len(r.reasons)
        (True, 2)
    """

    def __init__(self, sentiment_floor: float | None = -0.05, relevance_floor: float | None = 0.15, k: int = 3,
                 device: Any = None, sentiment: Any = None, relevance: Any = None):
        self.sentiment_floor = sentiment_floor
        self.relevance_floor = relevance_floor
        self.sentiment = sentiment if sentiment is not None else SentimentReward()
        self.relevance = relevance if relevance is not None else ConsistencyReward(k=k, device=device)

    def check(self, contexts: Sequence[Context], responses: Sequence[str]) -> list[CheckResult]:
        B = len(responses)
        if len(contexts) != B:
            raise ValueError(f"post-processing checks: {len(contexts)} contexts for {B} responses")
        nan = float("nan")
        sent = [float(v) for v in self.sentiment(contexts, responses)] if self.sentiment_floor is not None \
            else [nan] * B
        rel = [float(v) for v in self.relevance(contexts, responses)] if self.relevance_floor is not None \
            else [nan] * B
        out = []
        for s, r in zip(sent, rel):
            reasons = []
            if self.sentiment_floor is not None and s < self.sentiment_floor:
                reasons.append(f"sentiment {s:.2f} < floor {self.sentiment_floor:.2f}")
            if self.relevance_floor is not None and r < self.relevance_floor:
                reasons.append(f"relevance {r:.2f} < floor {self.relevance_floor:.2f}")
            out.append(CheckResult(bool(reasons), tuple(reasons), s, r))
        return out

    __call__ = check

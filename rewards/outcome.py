"""``resolution``: the outcome reward of a multi-turn conversation (1 if the customer said it was resolved)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Context

__all__ = ["ResolutionReward"]


class ResolutionReward:
    """1.0 for a conversation whose outcome is ``"resolved"``, else 0.0 (``"gave_up"``, or no outcome known).

    The outcome comes from the user simulator (``dialogue_env``'s LM customer ends each conversation with
    ``[RESOLVED]`` or ``[GAVE UP]``) and is passed as the ``outcomes`` keyword, one per conversation: the env scores
    it once per episode, on the last agent reply (its ``outcome_reward``, ``"resolution"`` by default with
    ``user_simulator="lm"``). Called without ``outcomes`` it returns 0.0 for every reply: nothing is resolved
    until a customer says so. Range [0, 1]::

        >>> ResolutionReward()([[]] * 3, ["a", "b", "c"], outcomes=["resolved", "gave_up", None])
        [1.0, 0.0, 0.0]
    """

    name = "resolution"
    kind = "additive"
    bounds = (0.0, 1.0)

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str],
                 outcomes: Sequence[str | None] | None = None, **kwargs: Any) -> list[float]:
        if outcomes is None:
            return [0.0] * len(responses)
        if len(outcomes) != len(responses):
            raise ValueError(f"resolution: got {len(outcomes)} outcomes for {len(responses)} responses")
        return [1.0 if o == "resolved" else 0.0 for o in outcomes]

    def __repr__(self) -> str:
        return "ResolutionReward()"

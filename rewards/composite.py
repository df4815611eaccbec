"""The weighted, gated composite of reward modules, with per-component reporting and output validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Context, RewardError, call_module, check_module, check_references, validate_output

__all__ = ["Component", "CompositeReward", "RewardResult"]


@dataclass
class Component:
    """One part of a composite: ``gate`` parts multiply the total, the others add ``weight * value``."""

    name: str
    module: Any
    weight: float = 1.0
    gate: bool = False


@dataclass
class RewardResult:
    """What :meth:`CompositeReward.score` returns for a batch of B replies.

    ``total``: float32 ``(B,)``; ``components``: name -> float32 ``(B,)`` with each part's *unweighted*
    value; ``details``: one dict per reply with explanations, e.g. ``{"ethics": "blocklist: 'idiot'"}``.
    """

    total: np.ndarray
    components: dict[str, np.ndarray]
    details: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.total.shape[0])

    def item(self, i: int) -> dict[str, Any]:
        """Reply ``i`` as plain Python: ``{"total": float, "components": {name: float}, "details": {...}}``."""
        return {"total": float(self.total[i]),
                "components": {k: float(v[i]) for k, v in self.components.items()},
                "details": dict(self.details[i]) if self.details else {}}


class CompositeReward:
    """A weighted sum of reward modules, multiplied by its gates::

        total = (sum_{additive i} w_i * r_i) * prod_{gates g} r_g
        total = prod_{gates g} r_g          when there are no additive parts

    A part is a gate when its module has ``kind == "gate"`` (e.g. ``ethics`` in its default mode), or when
    it is given under the key ``"gate"``; a gate's weight is ignored except that weight 0 reports the gate
    without applying it (any part with weight 0 is computed and reported, so it can be logged).

    Its parts are already-built modules (:class:`Component`); build one from a spec, resolving the names, with
    :func:`rewards.make` (a dict) or :func:`rewards.make_composite` (anything ``make`` accepts)::

        rewards.make({"coherence": 1.0, "sentiment": 0.5,
                      "consistency": {"weight": 1.0, "k": 2},
                      "my_pkg.rewards:Politeness": 0.2,
                      "gate": "ethics"}, device="cuda")

    :meth:`score` returns a :class:`RewardResult` with the total and each part's unweighted values;
    ``__call__`` returns only the totals, so a composite is itself a reward module. Every part's output is
    validated: a part that raises, returns the wrong number of values, a non-number, NaN or inf raises
    :class:`rewards.RewardError` naming the part -- never a silent 0.
    """

    kind = "additive"

    def __init__(self, components: Sequence[Component], *, name: str = "reward"):
        if isinstance(components, Mapping):
            raise TypeError("CompositeReward takes a list of Component; build one from a spec dict with "
                            "rewards.make(spec) or rewards.make_composite(spec)")
        comps = list(components)
        if not comps:
            raise ValueError("a composite reward needs at least one component")
        seen: set[str] = set()
        for c in comps:
            check_module(c.module, f"component {c.name!r}")
            if c.name in seen:
                raise ValueError(f"two reward components are named {c.name!r}; component names must be unique "
                                 "(give one of the classes a different `name`)")
            seen.add(c.name)
        self.components: list[Component] = comps
        self.name = name

    @property
    def names(self) -> list[str]:
        """Component names, in order."""
        return [c.name for c in self.components]

    @property
    def weights(self) -> dict[str, float]:
        return {c.name: c.weight for c in self.components}

    # -- scoring --------------------------------------------------------------------------------------
    def _run(self, c: Component, contexts: Sequence[Context], responses: Sequence[str],
             kwargs: dict[str, Any]) -> tuple[np.ndarray, list | None]:
        m = c.module
        details = None
        try:
            if hasattr(m, "score_and_explain"):
                out, details = call_module(m.score_and_explain, contexts, responses, **kwargs)
            else:
                out = call_module(m, contexts, responses, **kwargs)
                if hasattr(m, "explain"):
                    details = call_module(m.explain, contexts, responses, **kwargs)
        except RewardError:
            raise
        except Exception as exc:
            raise RewardError(f"reward module '{c.name}' ({type(m).__name__}) raised "
                              f"{type(exc).__name__}: {exc}") from exc
        values = validate_output(c.name, out, len(responses))
        if details is not None and len(details) != len(responses):
            raise RewardError(f"reward module '{c.name}': explain() returned {len(details)} items for a batch "
                              f"of {len(responses)}")
        return values, details

    def score(self, contexts: Sequence[Context], responses: Sequence[str],
              references: Sequence[str | None] | None = None, **kwargs: Any) -> RewardResult:
        """Score a batch: totals, each component's unweighted values, and per-reply details."""
        B = len(responses)
        if len(contexts) != B:
            raise ValueError(f"reward '{self.name}': got {len(contexts)} contexts for {B} responses")
        if isinstance(responses, str):
            raise TypeError("responses must be a list of strings, not a str")
        refs = check_references(references, B)
        if any(r is not None for r in refs):
            kwargs["references"] = refs
        additive = np.zeros(B, dtype=np.float64)
        gate = np.ones(B, dtype=np.float64)
        has_additive = False
        components: dict[str, np.ndarray] = {}
        details: list[dict[str, Any]] = [{} for _ in range(B)]
        for c in self.components:
            values, det = self._run(c, contexts, responses, kwargs)
            components[c.name] = values.astype(np.float32)
            if c.gate:
                if c.weight != 0:
                    gate *= values
            else:
                has_additive = True
                additive += c.weight * values
            if det is not None:
                for i, d in enumerate(det):
                    if isinstance(d, Mapping) and "reason" in d:
                        if d["reason"] is not None:
                            details[i][c.name] = d["reason"]
                    elif d:
                        details[i][c.name] = d
        total = (additive * gate if has_additive else gate) + 0.0  # + 0.0 turns -0.0 (negative * gate 0) into 0.0
        return RewardResult(total.astype(np.float32), components, details)

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str],
                 references: Sequence[str | None] | None = None, **kwargs: Any) -> np.ndarray:
        return self.score(contexts, responses, references=references, **kwargs).total

    def __repr__(self) -> str:
        parts = ", ".join(f"{c.name}{'(gate)' if c.gate else f'*{c.weight:g}'}" for c in self.components)
        return f"CompositeReward({parts})"

"""The weighted, gated composite of reward modules, with per-component reporting and output validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import (
    FLOAT32_MAX,
    Context,
    RewardError,
    call_module,
    check_module,
    check_references,
    clip_to_bounds,
    declared_bounds,
    validate_output,
)

__all__ = ["GATE_MARGIN", "Component", "CompositeReward", "RewardResult"]


@dataclass
class Component:
    """One part of a composite: ``gate`` parts gate the total (see :class:`CompositeReward`), the others add
    ``weight * value``."""

    name: str
    module: Any
    weight: float = 1.0
    gate: bool = False


@dataclass
class RewardResult:
    """What :meth:`CompositeReward.score` returns for a batch of B replies.

    ``total``: float32 ``(B,)``; ``components``: name -> float32 ``(B,)`` with each part's *unweighted*
    value; ``details``: one dict per reply with explanations, e.g. ``{"ethics": "blocklist: 'idiot'"}``, and
    under ``"gate"`` what the gate did to a reply it held back (:meth:`CompositeReward.score`).
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


GATE_MARGIN = 1.0
"""How far below the lowest ungated total a reply with gate value 0 scores (``CompositeReward(gate_margin=...)``)."""


class CompositeReward:
    """A weighted sum of reward modules, held back by its gates::

        u     = sum_{additive i} w_i * r_i                       the ungated total
        low   = sum_i (w_i * low_i if w_i >= 0 else w_i * high_i)  the lowest u the parts can produce
        floor = low - gate_margin                               (gate_margin = 1.0 by default)
        g     = prod_{gates} r_g                                 each gate value in [0, 1]
        total = g * u + (1 - g) * floor

    so a reply a gate lets through (``g = 1``) scores ``u``, a reply it blocks (``g = 0``, e.g. ``ethics`` judging
    it unsafe) scores ``floor`` -- strictly below every total a let-through reply can get, whatever the signs of
    the parts and weights (multiplying by 0 would instead *raise* a reply whose ``u`` is negative to 0) -- and a
    soft gate in between interpolates. ``(low_i, high_i)`` is part ``i``'s declared ``bounds``: every additive
    part with a non-zero weight in a gated composite must declare them (all built-ins do), else the constructor
    raises ValueError naming the part: without a range there is no total that is sure to be lower. Values are
    checked against the declared bounds on every call. ``floor`` is computed in float64 and rounded to the
    float32 strictly below ``float32(low)``; it is :attr:`gate_floor`. With no additive parts the total is
    ``g`` (a gate alone gives its own value).

    A part is a gate when its module has ``kind == "gate"`` (e.g. ``ethics`` in its default mode), or when
    it is given under the key ``"gate"``; a gate's weight is ignored except that weight 0 reports the gate
    without applying it (any part with weight 0 is computed and reported, so it can be logged). For each reply
    a gate held back (``g < 1``), ``details[i]["gate"]`` says ``{"value": g, "total", "ungated": u, "floor",
    "reason"}``, the reason naming the gate, e.g. ``"ethics: blocklist: 'idiot'"``.

    Its parts are already-built modules (:class:`Component`); build one from a spec, resolving the names, with
    :func:`rewards.make` (a dict) or :func:`rewards.make_composite` (anything ``make`` accepts)::

        rewards.make({"coherence": 1.0, "sentiment": 0.5,
                      "consistency": {"weight": 1.0, "k": 2},
                      "my_pkg.rewards:Politeness": 0.2,
                      "gate": "ethics"}, device="cuda")

    :meth:`score` returns a :class:`RewardResult` with the total and each part's unweighted values;
    ``__call__`` returns only the totals, so a composite is itself a reward module (with ``bounds`` when its
    parts have them). Every part's output is validated: a part that raises, returns the wrong number of
    values, a non-number, NaN, inf, a value beyond float32's range or outside its declared bounds raises
    :class:`rewards.RewardError` naming the part -- never a silent 0; so does a weighted value or a total
    that is not finite in float32 (the dtype of :attr:`RewardResult.total`, which the envs return).
    """

    kind = "additive"

    def __init__(self, components: Sequence[Component], *, name: str = "reward", gate_margin: float = GATE_MARGIN):
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
            if c.name == "gate":
                raise ValueError("a reward component may not be named 'gate' (the composite reports what its gates "
                                 "did under details['gate']); give the class a different `name`")
            seen.add(c.name)
        if not (isinstance(gate_margin, (int, float)) and 0 < gate_margin < FLOAT32_MAX):
            raise ValueError(f"gate_margin must be a positive finite number, got {gate_margin!r}")
        self.components: list[Component] = comps
        self.name = name
        self.gate_margin = float(gate_margin)
        self._bounds: dict[str, tuple[float, float] | None] = {}
        self.gate_floor: float | None = None
        self._refresh()

    @property
    def names(self) -> list[str]:
        """Component names, in order."""
        return [c.name for c in self.components]

    @property
    def weights(self) -> dict[str, float]:
        return {c.name: c.weight for c in self.components}

    def _gated(self) -> bool:
        return any(c.gate and c.weight != 0 for c in self.components)

    def _additive(self) -> list[Component]:
        return [c for c in self.components if not c.gate]

    def _sum_bounds(self) -> tuple[float, float] | None:
        """(lowest, highest) ungated total the parts can produce; None when a weighted part declares no bounds.
        Summed in the order (and float64 arithmetic) :meth:`score` uses, so no ungated total rounds below it."""
        low = high = 0.0
        for c in self._additive():
            if c.weight == 0:
                continue
            b = self._bounds[c.name]
            if b is None:
                return None
            ends = (c.weight * b[0], c.weight * b[1])
            low, high = low + min(ends), high + max(ends)
        return low, high

    def _floor(self) -> float | None:
        """The total of a reply with gate value 0 (float64 holding a float32), or None when nothing is gated."""
        if not self._gated() or not self._additive():
            return None
        unbounded = [c.name for c in self._additive() if c.weight != 0 and self._bounds[c.name] is None]
        if unbounded:
            names = ", ".join(f"'{n}'" for n in unbounded)
            raise ValueError(f"reward '{self.name}' gates {names}, which declare no bounds: a gated reply must score "
                             "below every reply the gate lets through, so each weighted part needs its range; "
                             "give the class `bounds = (low, high)` (every value it returns lies in [low, high]), "
                             "or set it on the instance / function, or FunctionReward(fn, bounds=(low, high))")
        low = self._sum_bounds()[0]
        with np.errstate(over="ignore"):
            floor = np.float32(low - self.gate_margin)
            if np.isfinite(floor):
                while floor >= np.float32(low):  # the margin is lost in float32 rounding when |low| is large
                    floor = np.nextafter(floor, np.float32(-np.inf))
        if not np.isfinite(floor):  # nextafter from -FLOAT32_MAX gives -inf too
            parts = ", ".join(f"'{c.name}' * {c.weight:g} over {self._bounds[c.name]}" for c in self._additive()
                              if c.weight != 0)
            raise ValueError(f"reward '{self.name}': the lowest total its parts can sum to ({parts}: {low:.3g}) is "
                             f"beyond float32's range, so a gated reply cannot score below it; use smaller weights")
        return float(floor)

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The range of this composite's totals (so it can be a bounded part of another), or None."""
        if not self._additive():
            return (0.0 if self._gated() else 1.0), 1.0
        b = self._sum_bounds()
        if b is None:
            return None
        return (self.gate_floor if self.gate_floor is not None else b[0]), b[1]

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
        self._refresh()
        additive = np.zeros(B, dtype=np.float64)
        gate = np.ones(B, dtype=np.float64)
        components: dict[str, np.ndarray] = {}
        details: list[dict[str, Any]] = [{} for _ in range(B)]
        reasons: list[list[str]] = [[] for _ in range(B)]  # why each applied gate held a reply back
        for c in self.components:
            values, det = self._run(c, contexts, responses, kwargs)
            if self._bounds[c.name] is not None:
                values = clip_to_bounds(c.name, values, self._bounds[c.name])
            components[c.name] = values.astype(np.float32)
            if c.gate:
                self._check_gate(c, values)
            elif c.weight != 0:
                additive += self._weighted(c, values)
            for i, d in enumerate(det if det is not None else ()):
                if isinstance(d, Mapping) and "reason" in d:
                    if d["reason"] is not None:
                        details[i][c.name] = d["reason"]
                elif d:
                    details[i][c.name] = d
            if c.gate and c.weight != 0:
                gate *= values
                for i in np.flatnonzero(values < 1.0):
                    why = details[i].get(c.name)
                    reasons[i].append(f"{c.name}: {why}" if isinstance(why, str) else f"{c.name} = {values[i]:g}")
        self._check_total(additive, components)
        if not self._additive():
            total = gate
        elif self.gate_floor is None:
            total = additive
        else:
            total = gate * additive + (1.0 - gate) * self.gate_floor  # gate 0: exactly the floor
            for i in np.flatnonzero(gate < 1.0):
                details[i]["gate"] = {"value": float(gate[i]), "total": float(np.float32(total[i])),
                                      "ungated": float(additive[i]), "floor": self.gate_floor,
                                      "reason": "; ".join(reasons[i])}
        return RewardResult((total + 0.0).astype(np.float32), components, details)  # + 0.0: no -0.0

    def _refresh(self) -> None:
        """Re-read the parts' bounds and recompute the floor (a module's bounds or a weight may have changed)."""
        self._bounds = {c.name: declared_bounds(c.module, c.name) for c in self.components}
        self.gate_floor = self._floor()

    def _check_gate(self, c: Component, values: np.ndarray) -> None:
        bad = (values < 0.0) | (values > 1.0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RewardError(f"reward module '{c.name}' is a gate and returned {values[i]:.6g} at index {i}; a gate's "
                              "value must lie in [0, 1] (1 lets the reply through, 0 blocks it)")

    def _weighted(self, c: Component, values: np.ndarray) -> np.ndarray:
        """``c.weight * values``, or a RewardError naming the part and its weight when that is inf in float32."""
        with np.errstate(over="ignore"):
            weighted = c.weight * values
        big = ~(np.abs(weighted) <= FLOAT32_MAX)
        if big.any():
            i = int(np.flatnonzero(big)[0])
            raise RewardError(f"reward module '{c.name}' with weight {c.weight:g}: weight * value = {c.weight:g} * "
                              f"{values[i]:.3g} = {weighted[i]:.3g} at index {i}, which is inf in float32 (largest "
                              f"finite {FLOAT32_MAX:.3g}), the dtype rewards are returned in; use a smaller weight")
        return weighted

    def _check_total(self, additive: np.ndarray, components: Mapping[str, np.ndarray]) -> None:
        big = ~(np.abs(additive) <= FLOAT32_MAX)
        if big.any():
            i = int(np.flatnonzero(big)[0])
            parts = " + ".join(f"{c.weight:g} * {float(components[c.name][i]):.3g} ('{c.name}')"
                               for c in self._additive() if c.weight != 0)
            raise RewardError(f"reward '{self.name}': the weighted total at index {i} is {parts} = {additive[i]:.3g}, "
                              f"which is inf in float32 (largest finite {FLOAT32_MAX:.3g}), the dtype rewards are "
                              "returned in; use smaller weights or scale the modules' values down")

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str],
                 references: Sequence[str | None] | None = None, **kwargs: Any) -> np.ndarray:
        return self.score(contexts, responses, references=references, **kwargs).total

    def __repr__(self) -> str:
        parts = ", ".join(f"{c.name}{'(gate)' if c.gate else f'*{c.weight:g}'}" for c in self.components)
        return f"CompositeReward({parts})"

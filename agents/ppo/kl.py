"""KL-coefficient controllers: the beta in ``r_t = -beta * kl_t (+ score on the last token)``.

Both have ``.value`` (the current beta), ``.update(current_kl, n_steps)`` (call once per PPO iteration with the
batch's mean per-reply KL) and ``state_dict()`` / ``load_state_dict()`` so that a resumed run continues with the
same beta. The state is plain Python floats and strings, safe to write as JSON.
"""

from __future__ import annotations

import math
from typing import Any


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


class FixedKLController:
    """A constant KL coefficient: ``beta`` never changes; ``update`` does nothing."""

    def __init__(self, kl_coef: float):
        self.value = float(kl_coef)
        if not (math.isfinite(self.value) and self.value >= 0):
            raise ValueError(f"kl_coef must be a finite number >= 0, got {kl_coef!r}")

    def update(self, current_kl: float, n_steps: int) -> None:
        """No-op (the coefficient is fixed)."""

    def state_dict(self) -> dict[str, Any]:
        return {"type": "fixed", "value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("type", "fixed") != "fixed":
            raise ValueError(f"cannot load a {state['type']!r} KL controller state into FixedKLController")
        self.value = float(state["value"])

    def __repr__(self) -> str:
        return f"FixedKLController(kl_coef={self.value})"


class AdaptiveKLController:
    """Adaptive KL coefficient that steers the KL towards a target (Ziegler et al. 2019, section 2.2).

    After each iteration, with ``KL`` the observed mean KL per reply and ``n_steps`` the number of replies
    (samples) in the batch:

        e_t     = clip(KL / target - 1, -0.2, 0.2)
        beta   <- beta * (1 + K_beta * e_t),   K_beta = n_steps / horizon

    so beta grows while the policy drifts further than ``target`` from the reference and shrinks while it stays
    closer; the clip bounds the relative change per update by ``0.2 * n_steps / horizon``.

    Args:
        init_kl_coef: the starting beta.
        target: the target KL (nats per reply), e.g. 6.0.
        horizon: the number of samples over which the error is corrected, e.g. 10000.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float):
        self.value = _check_positive("init_kl_coef", init_kl_coef)
        self.target = _check_positive("target", target)
        self.horizon = _check_positive("horizon", horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """``beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon)``."""
        current_kl = float(current_kl)  # also accepts a 0-dim tensor
        if not math.isfinite(current_kl):
            raise ValueError(f"AdaptiveKLController.update got a non-finite KL ({current_kl}); the run has diverged")
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon

    def state_dict(self) -> dict[str, Any]:
        return {"type": "adaptive", "value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("type", "adaptive") != "adaptive":
            raise ValueError(f"cannot load a {state['type']!r} KL controller state into AdaptiveKLController")
        self.value = float(state["value"])
        self.target = float(state.get("target", self.target))
        self.horizon = float(state.get("horizon", self.horizon))

    def __repr__(self) -> str:
        return f"AdaptiveKLController(kl_coef={self.value}, target={self.target}, horizon={self.horizon})"


__all__ = ["AdaptiveKLController", "FixedKLController"]

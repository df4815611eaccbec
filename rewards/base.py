"""The reward-module contract, the error type, and the helpers every scorer shares.

A reward module is any object with

- ``name: str`` -- the key its values are reported under (``info["reward_components"][name]``,
  ``rewards/<name>`` in the logs);
- ``__call__(contexts, responses, **kwargs) -> Sequence[float]`` -- batched: one float per response.
  ``contexts[i]`` is the chat history the reply ``responses[i]`` answers, in the Hugging Face message
  format ``[{"role": "system" | "user" | "assistant", "content": str}, ...]``. Modules that need the
  dataset's reference reply accept a ``references`` keyword (``list[str | None]``);
- optionally ``kind = "gate"``: the value, in [0, 1], gates the composite's total instead of being added
  (0 sends the reply below every reply the gate lets through; see :class:`rewards.CompositeReward`);
- optionally ``bounds = (low, high)``: finite numbers with every value in ``[low, high]``. A composite checks
  the values against them, and needs them on every weighted part it gates (the gated total is set below the
  lowest total the parts can sum to);
- optionally ``explain(contexts, responses, **kwargs) -> list[dict]``: per-item details (e.g. why the
  ethics module judged a reply unsafe).

Callers go through :func:`call_module`, which passes a keyword only to modules whose signature accepts
it, so a user module may be written with just ``(self, contexts, responses)``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

Message = Mapping[str, Any]
Context = Sequence[Message]

# Rewards leave a composite as float32 (RewardResult.total, .components); the envs hand them on as Python
# floats, so a value is valid only if it is finite in float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)

__all__ = [
    "Context",
    "FunctionReward",
    "Message",
    "RewardError",
    "RewardModelError",
    "RewardModule",
    "FLOAT32_MAX",
    "accepted_kwargs",
    "call_module",
    "check_bounds",
    "check_module",
    "clip_to_bounds",
    "declared_bounds",
    "check_references",
    "last_turn",
    "message_text",
    "validate_output",
]


class RewardModelError(ValueError):
    """A reward-model directory is missing, incomplete or does not match its config, or a backbone cannot serve
    one. The message names the path and the fix. (Defined here so that :mod:`rewards.learned` and
    :mod:`rewards.learned_lm` share it; importable from :mod:`rewards.learned`.)"""


class RewardError(RuntimeError):
    """A reward module failed: it raised, or returned something that is not one finite float per response.

    The message names the module and the problem; when the module raised, the original exception is
    chained (``err.__cause__``).
    """


@runtime_checkable
class RewardModule(Protocol):
    """Structural type of a reward module (see the module docstring)."""

    name: str

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str], **kwargs: Any) -> Sequence[float]:
        ...


def check_module(obj: Any, where: str = "reward module") -> Any:
    """Return ``obj`` if it looks like a reward module (a callable with a string ``name``), else raise TypeError."""
    if not callable(obj):
        raise TypeError(f"{where} {obj!r} is not callable; a reward module is an object with a `name` and "
                        "`__call__(contexts, responses) -> list[float]`")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{where} {obj!r} has no string attribute `name`; give the class a `name = \"...\"` "
                        "class attribute (it is the key its values are reported under)")
    return obj


def _signature(fn: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins / C callables
        return None


def accepted_kwargs(fn: Callable, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``kwargs`` that ``fn`` accepts (all of them if it takes ``**kwargs``)."""
    sig = _signature(fn)
    if sig is None:
        return {}
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(kwargs)
    names = {p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                   inspect.Parameter.KEYWORD_ONLY)}
    return {k: v for k, v in kwargs.items() if k in names}


def call_module(module: Any, contexts: Sequence[Context], responses: Sequence[str], **kwargs: Any) -> Any:
    """Call ``module(contexts, responses, **kw)`` passing only the keywords its signature accepts.

    ``call_module(m, ctxs, resps, references=refs)`` works for a module written as
    ``__call__(self, contexts, responses)`` (``references`` is dropped) and for one that takes
    ``references`` or ``**kwargs``. Keywords whose value is ``None`` are dropped too. No validation here;
    :class:`rewards.CompositeReward` validates.
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if kwargs:
        kwargs = accepted_kwargs(module, kwargs)
    return module(contexts, responses, **kwargs)


def validate_output(name: str, out: Any, batch: int) -> np.ndarray:
    """Turn a module's output into a float64 array of shape ``(batch,)`` or raise :class:`RewardError`.

    Rejects: a scalar, the wrong number of values, non-numeric items (with the offending index), NaN, +-inf
    and values beyond float32's range such as 1e39 (finite as a Python float, but inf as the float32 the
    composite returns; with the offending indices). Accepts lists, tuples, numpy arrays and torch tensors, including a
    ``(batch, 1)`` column.
    """
    if hasattr(out, "detach") and hasattr(out, "cpu"):  # torch tensor, without importing torch
        out = out.detach().float().cpu().numpy()
    if isinstance(out, (str, bytes)) or np.isscalar(out) or out is None:
        raise RewardError(f"reward module '{name}' returned {type(out).__name__} {out!r:.60}; it must return one "
                          f"float per response (a sequence of length {batch})")
    try:
        items = list(out)
    except TypeError as exc:
        raise RewardError(f"reward module '{name}' returned a non-iterable {type(out).__name__}; it must return "
                          f"one float per response (a sequence of length {batch})") from exc
    if len(items) != batch:
        raise RewardError(f"reward module '{name}' returned {len(items)} values for a batch of {batch} responses; "
                          "it must return exactly one float per response")
    arr = None
    try:  # fast path: a flat numeric sequence
        probe = np.asarray(out if isinstance(out, np.ndarray) else items)
        if probe.dtype.kind in "biuf" and probe.shape in ((batch,), (batch, 1)):
            arr = probe.reshape(batch).astype(np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None:
        arr = _to_floats(name, items, batch)
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = np.flatnonzero(bad)
        kinds = sorted({"NaN" if math.isnan(arr[j]) else "inf" for j in idx})
        raise RewardError(f"reward module '{name}' returned {' and '.join(kinds)} at index {_indices(idx)}; "
                          "rewards must be finite numbers")
    big = np.abs(arr) > FLOAT32_MAX
    if big.any():
        idx = np.flatnonzero(big)
        raise RewardError(f"reward module '{name}' returned {arr[idx[0]]:.3g} at index {_indices(idx)}, which is "
                          f"inf in float32 (largest finite {FLOAT32_MAX:.3g}), the dtype rewards are returned in; "
                          "scale its values down (rewards are usually within a few units of 0)")
    return arr


def _indices(idx: np.ndarray) -> str:
    return ", ".join(str(int(j)) for j in idx[:8]) + (", ..." if len(idx) > 8 else "")


def check_bounds(name: str, bounds: Any) -> tuple[float, float] | None:
    """A module's declared ``bounds`` as ``(low, high)`` floats (None when it declares none), or a ValueError
    naming the module when they are not two finite numbers with ``low <= high``."""
    if bounds is None:
        return None
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"reward module '{name}': bounds must be (low, high), two finite numbers, got "
                         f"{bounds!r:.80}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high or max(-low, high) > FLOAT32_MAX:
        raise ValueError(f"reward module '{name}': bounds must be (low, high) with finite low <= high (in float32), "
                         f"got {bounds!r:.80}; a module with no finite range declares bounds = None")
    return low, high


def declared_bounds(module: Any, name: str | None = None) -> tuple[float, float] | None:
    """``check_bounds`` of ``module.bounds`` (None when the module has no such attribute)."""
    return check_bounds(name or getattr(module, "name", type(module).__name__), getattr(module, "bounds", None))


def clip_to_bounds(name: str, values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """``values`` clipped to ``bounds``, or a :class:`RewardError` when one lies outside them by more than float
    rounding (1e-6, relative to the bound when it exceeds 1): a module must keep to the range it declares."""
    low, high = bounds
    tol_low, tol_high = 1e-6 * max(1.0, abs(low)), 1e-6 * max(1.0, abs(high))
    out = (values < low - tol_low) | (values > high + tol_high)
    if out.any():
        idx = np.flatnonzero(out)
        raise RewardError(f"reward module '{name}' returned {values[idx[0]]:.6g} at index {_indices(idx)}, outside "
                          f"its declared bounds ({low:g}, {high:g}); fix the module or its `bounds`")
    return np.clip(values, low, high)


def _to_floats(name: str, items: list, batch: int) -> np.ndarray:
    arr = np.empty(batch, dtype=np.float64)
    for i, v in enumerate(items):
        if isinstance(v, np.ndarray) and v.size == 1:
            v = v.reshape(())
        elif isinstance(v, (list, tuple)) and len(v) == 1:
            v = v[0]
        if isinstance(v, (str, bytes)) or v is None:
            raise RewardError(f"reward module '{name}' returned a non-numeric value {v!r:.60} at index {i}")
        try:
            arr[i] = float(v)
        except (TypeError, ValueError) as exc:
            raise RewardError(f"reward module '{name}' returned a non-numeric value {v!r:.60} "
                              f"({type(v).__name__}) at index {i}") from exc
    return arr


def check_references(references: Sequence[str | None] | None, batch: int) -> list[str | None]:
    """``references`` as a list of length ``batch`` (all None when not given)."""
    if references is None:
        return [None] * batch
    if isinstance(references, str):
        raise TypeError("references must be a list with one reference (or None) per response, not a str")
    refs = list(references)
    if len(refs) != batch:
        raise ValueError(f"got {len(refs)} references for {batch} responses; pass one (or None) per response")
    return refs


def message_text(message: Any) -> str:
    """The text of one chat message: ``content`` as a string, or the text parts of a content-block list."""
    if isinstance(message, str):
        return message
    content = message.get("content", "") if isinstance(message, Mapping) else message
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # [{"type": "text", "text": "..."}, ...]
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return " ".join(parts)
    return str(content)


def last_turn(context: Context, role: str | None = "user") -> str | None:
    """Content of the last message with ``role`` (any non-system role when ``role`` is None), or None."""
    for message in reversed(context):
        r = message.get("role")
        if (role is None and r != "system") or r == role:
            return message_text(message)
    return None


class FunctionReward:
    """Wraps a plain batched function ``fn(contexts, responses[, references=...]) -> list[float]`` as a
    reward module (``bounds``: the range of its values, default ``fn.bounds`` when the function has one).
    Picklable as long as ``fn`` is a module-level function."""

    def __init__(self, fn: Callable[..., Sequence[float]], name: str | None = None, kind: str = "additive",
                 bounds: Sequence[float] | None = None):
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.kind = kind
        # the range of fn's values: given here, or as an attribute of the function (fn.bounds = (0.0, 1.0))
        self.bounds = check_bounds(self.name, getattr(fn, "bounds", None) if bounds is None else bounds)

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str], **kwargs: Any) -> Sequence[float]:
        return call_module(self.fn, contexts, responses, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionReward({getattr(self.fn, '__qualname__', self.fn)!r}, name={self.name!r})"

"""Name -> reward module: ``register``, ``available``, ``make``; and spec -> composite: ``make_composite``.

``make(spec)`` resolves a string in this order:

1. a name registered with :func:`register` or a built-in (``coherence``, ``sentiment``, ``consistency``,
   ``ethics``, ``length``, ``repetition``, ``unfinished``; and ``learned``, a trained reward model, which needs ``path=``);
2. ``"package.module:attr"`` -- ``attr`` may be a class (instantiated), a function (wrapped) or an instance;
3. a plug-in: an entry point named ``spec`` in the group ``dialogue_env.rewards``, declared by any installed
   distribution, e.g. in its pyproject.toml::

       [project.entry-points."dialogue_env.rewards"]
       politeness = "my_pkg.rewards:Politeness"

4. otherwise :class:`UnknownRewardError` (a ``KeyError``) listing the available names and accepted forms.

A dict ``{spec: weight}`` is resolved here, part by part, into a :class:`rewards.CompositeReward` of built modules
(this module imports :mod:`rewards.composite`, never the other way round).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .base import FunctionReward, accepted_kwargs, check_module
from .composite import Component, CompositeReward
from .utils import (
    BadSpecError,
    ConfigTypeError,
    SpecAttributeError,
    SpecImportError,
    SpecModuleNotFoundError,
    import_attr,
)

__all__ = [
    "BUILTINS",
    "DEFAULT_SPEC",
    "ENTRY_POINT_GROUP",
    "TRAINED_BUILTINS",
    "UnknownRewardError",
    "available",
    "build",
    "make",
    "make_composite",
    "register",
    "unregister",
]

ENTRY_POINT_GROUP = "dialogue_env.rewards"

# The seed's reward: R = r_coherence + r_sentiment + r_consistency, gated by ethics (ethics' default mode
# is "gate", so an unsafe reply scores the composite's floor, -3.0, instead of the sum).
DEFAULT_SPEC: dict[str, float] = {"coherence": 1.0, "sentiment": 1.0, "consistency": 1.0, "ethics": 1.0}

# Built-ins are imported on first use, so `import rewards` stays light (no torch, no sklearn).
BUILTINS: dict[str, str] = {
    "coherence": "rewards.coherence:CoherenceReward",
    "sentiment": "rewards.sentiment:SentimentReward",
    "consistency": "rewards.consistency:ConsistencyReward",
    "ethics": "rewards.ethics:EthicsReward",
    "length": "rewards.penalties:LengthPenalty",
    "repetition": "rewards.penalties:RepetitionPenalty",
    "unfinished": "rewards.penalties:UnfinishedPenalty",
    "resolution": "rewards.outcome:ResolutionReward",
}

# Built-ins that serve a trained model and so need an option: `make("learned", path=DIR)` or
# {"learned": {"weight": 1.0, "path": DIR}} (a reward-model directory from `dialogue-rl reward-model train`).
# Kept apart from BUILTINS, whose names work with no options at all.
TRAINED_BUILTINS: dict[str, str] = {
    "learned": "rewards.learned:LearnedReward",
}

_REGISTRY: dict[str, Any] = {}

_FORMS = ("a reward spec is: a registered or built-in name; 'package.module:attr' naming a class, function or "
          f"instance; the name of an entry point in the group '{ENTRY_POINT_GROUP}'; a reward module instance "
          "(with `name` and `__call__(contexts, responses)`); a class; or a dict {spec: weight} where a weight "
          "may also be {'weight': w, **options} and the optional key 'gate' names a gate")


class UnknownRewardError(KeyError):
    """No reward of that name. A ``KeyError`` whose message lists what exists."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


def register(name: str, *, override: bool = False) -> Callable[[Any], Any]:
    """Decorator: make a class or a plain function available as ``make(name)`` and in reward dicts.

    A class is instantiated by :func:`make` with the options as keyword arguments; a plain batched
    function ``fn(contexts, responses) -> list[float]`` is wrapped in a picklable module object named
    ``name``. Registering a name that exists (a built-in included) raises ``ValueError`` unless
    ``override=True``. Returns the decorated object unchanged.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"reward name must be a non-empty string without ':', got {name!r}")

    def decorator(obj: Any) -> Any:
        if not callable(obj):
            raise TypeError(f"@rewards.register({name!r}) needs a class or a function, got {obj!r}")
        builtin = name in BUILTINS or name in TRAINED_BUILTINS
        if not override and (name in _REGISTRY or builtin):
            what = "a built-in" if builtin and name not in _REGISTRY else f"{_REGISTRY[name]!r}"
            raise ValueError(f"reward name {name!r} is already registered ({what}); choose another name or pass "
                             f"override=True: @rewards.register({name!r}, override=True)")
        _REGISTRY[name] = obj
        return obj

    return decorator


def unregister(name: str) -> None:
    """Remove a registered name (built-ins come back if they were overridden). Mostly for tests."""
    _REGISTRY.pop(name, None)


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Sorted names :func:`make` accepts: built-ins, registered names and entry-point plug-ins."""
    return sorted(set(BUILTINS) | set(TRAINED_BUILTINS) | set(_REGISTRY) | set(_entry_points()))


def _import_attr(target: str, spec: str) -> Any:
    try:
        return import_attr(target)
    except BadSpecError as exc:
        raise UnknownRewardError(f"bad reward spec {spec!r}: expected 'package.module:attr'") from exc
    except SpecModuleNotFoundError as exc:
        raise UnknownRewardError(
            f"reward spec {spec!r}: no module named {exc.name!r} (is it installed, or on sys.path / "
            f"PYTHONPATH?). {_FORMS}. Available names: {', '.join(available())}") from exc
    except SpecAttributeError as exc:
        raise UnknownRewardError(f"reward spec {spec!r}: module {exc.module!r} has no attribute {exc.attr!r}") from exc
    except SpecImportError as exc:
        raise ImportError(f"reward spec {spec!r}: importing {exc.module!r} failed: {exc.__cause__}") from exc


def _resolve(spec: str) -> tuple[Any, str | None]:
    """(object, name to give it) for a string spec, following the documented order."""
    if spec in _REGISTRY:
        return _REGISTRY[spec], spec
    if spec in BUILTINS:
        return _import_attr(BUILTINS[spec], spec), spec
    if spec in TRAINED_BUILTINS:
        return _import_attr(TRAINED_BUILTINS[spec], spec), spec
    if ":" in spec:
        return _import_attr(spec, spec), None
    eps = _entry_points()
    if spec in eps:
        try:
            return eps[spec].load(), spec
        except Exception as exc:
            raise ImportError(f"reward plug-in {spec!r} (entry point {eps[spec].value!r} in group "
                              f"{ENTRY_POINT_GROUP!r}) failed to load: {exc}") from exc
    names = available()
    close = difflib.get_close_matches(spec, names, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise UnknownRewardError(f"unknown reward {spec!r}.{hint} Available: {', '.join(names)}. {_FORMS}.")


def build(obj: Any, name: str | None = None, kwargs: Mapping[str, Any] | None = None,
          options: Mapping[str, Any] | None = None) -> Any:
    """Turn a resolved object into a reward module.

    ``kwargs`` are explicit constructor arguments (from ``{"spec": {"weight": w, **kwargs}}``) and must be
    accepted; ``options`` (e.g. ``device``) go only to constructors whose signature accepts them.
    """
    kwargs = dict(kwargs or {})
    options = dict(options or {})
    if inspect.isclass(obj):
        ctor = {**accepted_kwargs(obj, options), **kwargs}
        try:
            module = obj(**ctor)
        except TypeError as exc:
            raise ConfigTypeError(f"reward {name or obj.__name__!r}: constructing {obj.__qualname__} with "
                            f"{sorted(ctor)} failed: {exc}") from exc
        if not isinstance(getattr(module, "name", None), str):
            try:
                module.name = name or obj.__name__
            except AttributeError:
                pass
        return check_module(module, f"reward {name or obj.__name__!r}")
    if kwargs:
        raise ConfigTypeError(f"reward {name or obj!r} is not a class, so it takes no options (got {sorted(kwargs)})")
    if isinstance(getattr(obj, "name", None), str) and callable(obj) and not inspect.isroutine(obj):
        return obj  # already a module instance
    if callable(obj):
        return FunctionReward(obj, name=name or getattr(obj, "__name__", None))
    raise ConfigTypeError(f"reward {name!r} resolved to {obj!r}, which is neither a class, a function nor a module "
                    f"instance. {_FORMS}")


def _is_gate(module: Any) -> bool:
    return getattr(module, "kind", "additive") == "gate"


def _weight_and_kwargs(spec: Any, value: Any) -> tuple[float, dict[str, Any]]:
    if isinstance(value, Mapping):
        kwargs = dict(value)
        weight = kwargs.pop("weight", 1.0)
    else:
        weight, kwargs = value, {}
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)) or not np.isfinite(weight):
        raise ConfigTypeError(f"reward dict: the weight of {spec!r} must be a finite number, got {weight!r}")
    return float(weight), kwargs


def _module_from(spec: Any, kwargs: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    if not kwargs:
        return make(spec, **options)
    if isinstance(spec, str):
        obj, name = _resolve(spec)
        return build(obj, name, kwargs=kwargs, options=options)
    return build(spec, None, kwargs=kwargs, options=options)


def _components(spec: Mapping[Any, Any], options: Mapping[str, Any]) -> list[Component]:
    """The built parts of a reward dict, in order: additive parts (and gate-kind modules) first, then ``"gate"``."""
    comps: list[Component] = []
    gate_specs: list[Any] = []
    for key, value in spec.items():
        if key == "gate":
            gate_specs.extend(value if isinstance(value, (list, tuple)) else [value])
            continue
        weight, kwargs = _weight_and_kwargs(key, value)
        module = _module_from(key, kwargs, options)
        comps.append(Component(module.name, module, weight, _is_gate(module)))
    for g in gate_specs:
        if isinstance(g, Mapping):  # {"spec": "ethics", **kwargs}
            kwargs = dict(g)
            try:
                g = kwargs.pop("spec")
            except KeyError:
                raise ConfigTypeError("reward dict: a gate given as a dict needs a 'spec' key, e.g. "
                                "{'gate': {'spec': 'ethics', 'profanity_threshold': 0.8}}") from None
            module = _module_from(g, kwargs, options)
        else:
            module = make(g, **options)
        comps.append(Component(module.name, module, 1.0, True))
    return comps


def make_composite(spec: Any, **options: Any) -> CompositeReward:
    """A :class:`rewards.CompositeReward` from anything :func:`make` accepts; a single name / module / class becomes
    a composite of one (a gate-kind module alone gives its own value as the total)."""
    if isinstance(spec, CompositeReward):
        return spec
    if isinstance(spec, Mapping):
        return CompositeReward(_components(spec, options))
    module = make(spec, **options)
    if isinstance(module, CompositeReward):
        return module
    return CompositeReward([Component(module.name, module, 1.0, _is_gate(module))])


def make(spec: Any, **options: Any) -> Any:
    """Build a reward module from ``spec`` (see the module docstring for the resolution order).

    - ``str``: registered / built-in name, ``"package.module:attr"``, or entry-point plug-in;
    - a module instance (anything callable with a string ``name``): returned as is;
    - a class: instantiated with the ``options`` it accepts;
    - a plain function: wrapped (its ``__name__`` is the name);
    - a dict ``{spec: weight}``: a :class:`rewards.CompositeReward`.

    ``options`` (e.g. ``device="cuda"``) are passed to every constructor whose signature accepts them.
    Raises :class:`UnknownRewardError` (a ``KeyError``) for an unknown name.
    """
    if isinstance(spec, Mapping):
        return make_composite(spec, **options)
    if isinstance(spec, str):
        obj, name = _resolve(spec)
        return build(obj, name, options=options)
    if spec is None:
        raise ConfigTypeError(f"reward spec is None. {_FORMS}")
    return build(spec, None, options=options)

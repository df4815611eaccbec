"""Pluggable reward modules for RLHF on dialogue.

A reward module is a batched callable ``module(contexts, responses) -> list[float]`` with a ``name``;
``contexts[i]`` is the chat history (Hugging Face message dicts) that ``responses[i]`` answers::

    import rewards

    @rewards.register("politeness")
    class Politeness:
        name = "politeness"
        def __call__(self, contexts, responses):
            return [float("please" in r.lower()) for r in responses]

    reward = rewards.make({"coherence": 1.0, "sentiment": 1.0, "consistency": 1.0, "ethics": 1.0,
                           "politeness": 0.5})
    result = reward.score(contexts, responses, references=refs)   # RewardResult
    result.total, result.components["politeness"], result.details

:func:`make_composite` turns anything ``make`` accepts into a :class:`CompositeReward` (a single name becomes a
composite of one).

Built-ins: ``coherence``, ``sentiment``, ``consistency``, ``ethics`` (a gate by default), ``length``,
``repetition``, ``unfinished``, and ``learned`` (a Bradley–Terry reward model trained on preference pairs:
``make("learned", path=DIR)``, see :mod:`rewards.learned`); :data:`DEFAULT_SPEC` is the seed's reward
(coherence + sentiment + consistency, gated by ethics). Also: :class:`EthicsFilter` and :class:`PostProcessChecks`
for after generation, :func:`to_trl` for ``trl.GRPOTrainer(reward_funcs=[...])``, and ``python -m rewards.bench``
for throughput.
"""

from __future__ import annotations

from typing import Any

from .base import FunctionReward, RewardError, RewardModule, call_module, check_module, validate_output
from .composite import Component, CompositeReward, RewardResult
from .registry import (
    BUILTINS,
    DEFAULT_SPEC,
    ENTRY_POINT_GROUP,
    TRAINED_BUILTINS,
    UnknownRewardError,
    available,
    make,
    make_composite,
    register,
    unregister,
)

__all__ = [
    "BUILTINS",
    "DEFAULT_SPEC",
    "ENTRY_POINT_GROUP",
    "CheckResult",
    "CoherenceReward",
    "Component",
    "CompositeReward",
    "ConsistencyReward",
    "EthicsFilter",
    "EthicsReward",
    "FilterResult",
    "FunctionReward",
    "LearnedReward",
    "LengthPenalty",
    "PostProcessChecks",
    "RepetitionPenalty",
    "UnfinishedPenalty",
    "ResolutionReward",
    "RewardError",
    "RewardModule",
    "RewardResult",
    "SentimentReward",
    "TRAINED_BUILTINS",
    "TRLRewardFunction",
    "UnknownRewardError",
    "available",
    "call_module",
    "check_module",
    "make",
    "make_composite",
    "register",
    "to_trl",
    "unregister",
    "validate_output",
]

# The scorer classes live in submodules that import their libraries lazily; expose them lazily too so
# `import rewards` stays cheap.
_LAZY = {
    "CoherenceReward": "coherence",
    "SentimentReward": "sentiment",
    "ConsistencyReward": "consistency",
    "EthicsReward": "ethics",
    "LengthPenalty": "penalties",
    "RepetitionPenalty": "penalties",
    "UnfinishedPenalty": "penalties",
    "ResolutionReward": "outcome",
    "EthicsFilter": "filters",
    "FilterResult": "filters",
    "PostProcessChecks": "filters",
    "CheckResult": "filters",
    "to_trl": "adapters",
    "TRLRewardFunction": "adapters",
    "LearnedReward": "learned",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

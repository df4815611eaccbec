"""Adapters from reward modules to other libraries' conventions (TRL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import message_text
from .composite import CompositeReward
from .registry import make_composite

__all__ = ["REFERENCE_COLUMNS", "TRLRewardFunction", "to_trl"]

# dataset columns passed on as references, first match wins
REFERENCE_COLUMNS = ("references", "reference", "answer", "solution", "ground_truth")

# what TRL's trainers pass besides the dataset columns; never forwarded to the modules
_TRL_RESERVED = ("trainer_state", "log_extra", "log_metric", "environments", "completion_ids", "prompts",
                 "completions")


def _as_context(prompt: Any) -> list[dict[str, Any]]:
    if isinstance(prompt, str):  # standard format: the raw prompt text
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, Mapping):
        return [dict(prompt)]
    return [dict(m) for m in prompt]  # conversational format: a list of messages


def _as_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return message_text(completion)
    # conversational: [{"role": "assistant", "content": ...}, ...]; keep the assistant turns' text
    msgs = list(completion)
    texts = [message_text(m) for m in msgs if not isinstance(m, Mapping) or m.get("role", "assistant") == "assistant"]
    return "\n".join(t for t in texts if t)


class TRLRewardFunction:
    """A reward module with TRL's reward-function signature (see :func:`to_trl`). Picklable."""

    def __init__(self, composite: CompositeReward, name: str):
        self.composite = composite
        self.__name__ = name  # TRL names the reward (and its `rewards/<name>` logs) after this

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                 completion_ids: Any = None, **kwargs: Any) -> list[float]:
        if completions is None:
            raise TypeError(f"{self.__name__}: TRL reward functions are called with completions=...")
        responses = [_as_text(c) for c in completions]
        if prompts is None:
            prompts = [""] * len(responses)
        contexts = [_as_context(p) for p in prompts]
        references = None
        for col in REFERENCE_COLUMNS:
            if col in kwargs and kwargs[col] is not None:
                references = [None if r is None else message_text(r) if not isinstance(r, str) else r
                              for r in kwargs[col]]
                break
        extra = {k: v for k, v in kwargs.items() if k not in _TRL_RESERVED and k not in REFERENCE_COLUMNS}
        result = self.composite.score(contexts, responses, references=references, **extra)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and len(self.composite.components) > 1:
            for comp, values in result.components.items():  # per-part means beside TRL's own rewards/<name>
                log_metric(f"rewards/{self.__name__}/{comp}", float(values.mean()) if len(values) else 0.0)
        return [float(v) for v in result.total]

    def __repr__(self) -> str:
        return f"TRLRewardFunction({self.__name__!r}, {self.composite!r})"


def to_trl(module_or_spec: Any, name: str | None = None, **options: Any) -> TRLRewardFunction:
    """Wrap a reward module (or anything :func:`rewards.make` accepts) as a TRL reward function::

        trainer = GRPOTrainer(model=..., reward_funcs=[rewards.to_trl(rewards.DEFAULT_SPEC)], ...)

    TRL calls it as ``f(prompts=..., completions=..., completion_ids=..., **dataset_columns, trainer_state=...,
    log_extra=..., log_metric=...)``. Prompts and completions may be strings (standard format) or lists of
    chat messages (conversational format); a string prompt becomes a one-message user context. A dataset
    column named ``references``/``reference``/``answer``/``solution``/``ground_truth`` is passed on as the
    references. Returns one float per completion; errors are :class:`rewards.RewardError`. For a composite,
    each part's batch mean is also logged as ``rewards/<name>/<part>`` through TRL's ``log_metric``.
    """
    composite = make_composite(module_or_spec, **options)
    if name is None:
        if len(composite.components) == 1:
            name = composite.components[0].name
        else:
            name = composite.name
    return TRLRewardFunction(composite, name)

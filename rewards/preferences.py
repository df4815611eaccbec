"""Preference pairs, what a learned reward model (:mod:`rewards.learned`) trains on: the JSONL format, its validating
loader, and the shipped customer-service pairs (``rewards/data/preferences/{train,test}.jsonl``).

Preference JSONL (one JSON object per line, UTF-8; blank lines are ignored)::

    {"id": "pref-0001",                            # optional
     "context": [{"role": "user", "content": "..."}],   # chat history (or a plain string = one user turn)
     "chosen": "the better reply", "rejected": "the worse reply",
     "meta": {...}}                                  # optional

The context's messages follow the dialogue format of :mod:`dialogue_env.data` (roles system / user / assistant,
string content). Every line is validated; a bad line raises :class:`DatasetError` naming the file, the line number
and what is wrong.

TRL's preference format (what ``trl.RewardTrainer`` reads, conversational) is read too, line by line, so pairs move
both ways (:func:`to_trl` writes it)::

    {"chosen": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "the better reply"}],
     "rejected": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "the worse reply"}]}
    {"prompt": [{"role": "user", "content": "..."}],                 # explicit prompt
     "chosen": [{"role": "assistant", "content": "..."}], "rejected": [{"role": "assistant", "content": "..."}]}

The context is the prompt (explicit, or the conversation before the last message); the replies are the last
messages, which must be the assistant's. Other keys (``id``, ``meta``) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .jsonl import DatasetError, _fail, _optional_str, _read_jsonl, _validate_messages

__all__ = ["BUILTIN_PREFERENCE_SETS", "DATA_DIR", "DatasetError", "Preference", "load_preference_dataset",
           "load_preferences", "to_trl"]

DATA_DIR = Path(__file__).resolve().parent / "data"
BUILTIN_PREFERENCE_SETS = ("customer_service", "medical", "education", "legal")


@dataclass(frozen=True)
class Preference:
    """One preference pair: for ``context``, ``chosen`` is the better reply than ``rejected``."""

    context: tuple
    chosen: str
    rejected: str
    id: str | None = None
    meta: dict = field(default_factory=dict)


def load_preferences(path) -> list[Preference]:
    """Load and validate a preference JSONL file (format in the module docstring)."""
    path = Path(path)
    out = []
    for lineno, obj in _read_jsonl(path, BUILTIN_PREFERENCE_SETS):
        if isinstance(obj.get("chosen"), list) or isinstance(obj.get("rejected"), list):
            obj = _from_trl(obj, path, lineno)
        context = obj.get("context")
        if isinstance(context, str):
            context = [{"role": "user", "content": context}]
        if context is None:
            raise _fail(path, lineno, "missing 'context'")
        context = _validate_messages(context, path, lineno, what="context")
        for key in ("chosen", "rejected"):
            value = obj.get(key)
            if not isinstance(value, str) or not value.strip():
                raise _fail(path, lineno, f"'{key}' must be a non-empty string")
        if obj["chosen"] == obj["rejected"]:
            raise _fail(path, lineno, "'chosen' and 'rejected' are identical")
        meta = obj.get("meta", {})
        if not isinstance(meta, dict):
            raise _fail(path, lineno, "'meta' must be an object")
        out.append(Preference(context=context, chosen=obj["chosen"], rejected=obj["rejected"],
                              id=_optional_str(obj, "id", path, lineno), meta=meta))
    if not out:
        raise DatasetError(f"{path}: the file holds no preference pairs")
    return out


def load_preference_dataset(name_or_path: str = "customer_service", split: str = "train") -> list[Preference]:
    """Preference pairs: the shipped customer-service set (``split`` = train: 400 pairs, test: 80; contexts from
    the dialogue set's train and validation splits respectively, never its test split), the shipped domain sets
    ``"medical"``, ``"education"``, ``"legal"`` (``rewards/data/preferences/<domain>/``, built the same way by
    scripts/make_domain_data.py), or a user's JSONL file."""
    if name_or_path in BUILTIN_PREFERENCE_SETS:
        if split not in ("train", "test"):
            raise ValueError(f"split={split!r}: the shipped preference sets have the splits train and test")
        folder = DATA_DIR / "preferences" / ("" if name_or_path == "customer_service" else name_or_path)
        return load_preferences(folder / f"{split}.jsonl")
    return load_preferences(Path(str(name_or_path)).expanduser())


def _from_trl(obj: dict, path, lineno) -> dict:
    """A TRL conversational preference line as this module's format (``context``, ``chosen``, ``rejected``)."""
    convs = {}
    for key in ("chosen", "rejected"):
        conv = obj.get(key)
        if not isinstance(conv, list) or not conv:
            raise _fail(path, lineno, f"'{key}' must be a non-empty list of messages in TRL's conversational format "
                                      "(or a string, with 'context', in this project's format)")
        last = conv[-1]
        if not isinstance(last, dict) or last.get("role") != "assistant" or not isinstance(last.get("content"), str):
            raise _fail(path, lineno, f"'{key}' must end with an assistant message (the reply being judged)")
        convs[key] = conv
    prompt = obj.get("prompt")
    if prompt is None:  # implicit prompt: the conversation before the replies, which both must share
        prompt = convs["chosen"][:-1]
        if convs["rejected"][:-1] != prompt:
            raise _fail(path, lineno, "'chosen' and 'rejected' differ before their last message",
                        "in TRL's implicit-prompt format both conversations share everything but the final reply")
    elif len(convs["chosen"]) != 1 or len(convs["rejected"]) != 1:
        raise _fail(path, lineno, "with an explicit 'prompt', 'chosen' and 'rejected' must each hold one assistant "
                                  "message")
    rest = {k: v for k, v in obj.items() if k not in ("prompt", "chosen", "rejected")}
    return {**rest, "context": prompt, "chosen": convs["chosen"][-1]["content"],
            "rejected": convs["rejected"][-1]["content"]}


def to_trl(pairs, implicit_prompt: bool = True) -> list[dict]:
    """Preference pairs as TRL's conversational preference rows (``trl.RewardTrainer``'s dataset format): with
    ``implicit_prompt`` ``{"chosen": context + [reply], "rejected": context + [reply]}``, else ``{"prompt": context,
    "chosen": [reply], "rejected": [reply]}``; ``id`` and ``meta`` are kept when set. :func:`load_preferences`
    reads both back."""
    rows = []
    for p in pairs:
        ctx = [dict(m) for m in p.context]
        chosen, rejected = {"role": "assistant", "content": p.chosen}, {"role": "assistant", "content": p.rejected}
        row = ({"chosen": [*ctx, chosen], "rejected": [*ctx, rejected]} if implicit_prompt
               else {"prompt": ctx, "chosen": [chosen], "rejected": [rejected]})
        if p.id is not None:
            row["id"] = p.id
        if p.meta:
            row["meta"] = dict(p.meta)
        rows.append(row)
    return rows

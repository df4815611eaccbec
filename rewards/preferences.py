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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .jsonl import DatasetError, _fail, _optional_str, _read_jsonl, _validate_messages

__all__ = ["BUILTIN_PREFERENCE_SETS", "DATA_DIR", "DatasetError", "Preference", "load_preference_dataset",
           "load_preferences"]

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

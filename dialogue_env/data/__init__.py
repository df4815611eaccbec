"""Dialogue and preference data: the JSONL formats, validating loaders, and the shipped datasets.

Dialogue JSONL (one JSON object per line, UTF-8; blank lines are ignored)::

    {"id": "cs-billing-001",                       # unique string (required)
     "turns": [{"role": "user", "content": "..."},  # chat messages in the Hugging Face format (required):
               {"role": "assistant", "content": "..."}],  # roles system / user / assistant, string content
     "reference": "...",                            # optional: a reference reply to a final user turn
     "intent": "billing", "persona": "calm",         # optional labels
     "meta": {...}}                                  # optional, anything JSON

Each user message that is followed by an assistant message, or that ends the dialogue, is a *reply slot*: the
environment shows the history up to it and the agent writes the reply. The reference for a slot is the dataset's
assistant message after it (or ``reference`` for a final user turn).

Preference JSONL::

    {"id": "pref-0001",                            # optional
     "context": [{"role": "user", "content": "..."}],   # chat history (or a plain string = one user turn)
     "chosen": "the better reply", "rejected": "the worse reply",
     "meta": {...}}                                  # optional

Every loader validates every line; a bad line raises :class:`DatasetError` naming the file, the line number and
what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rewards.utils import atomic_path

ROLES = ("system", "user", "assistant")
SPLITS = ("train", "validation", "test")
DATA_DIR = Path(__file__).resolve().parent
BUILTIN_DATASETS = ("customer_service", "chatterbot", "chatterbot-chinese")


class DatasetError(ValueError):
    """A dataset file or line is malformed. The message names the file, the line and the problem."""


@dataclass(frozen=True)
class Dialogue:
    """One dialogue: ``turns`` is a list of ``{"role", "content"}`` messages."""

    id: str
    turns: tuple
    reference: str | None = None
    intent: str | None = None
    persona: str | None = None
    meta: dict = field(default_factory=dict)

    def reply_slots(self) -> list[tuple[int, str | None]]:
        """``(end, reference)`` for each reply slot: the context is ``turns[:end]`` (ending on a user turn)."""
        slots = []
        for i, msg in enumerate(self.turns):
            if msg["role"] != "user":
                continue
            if i + 1 < len(self.turns) and self.turns[i + 1]["role"] == "assistant":
                slots.append((i + 1, self.turns[i + 1]["content"]))
            elif i + 1 == len(self.turns):
                slots.append((i + 1, self.reference))
        return slots

    def to_json(self) -> dict:
        out = {"id": self.id, "turns": [dict(m) for m in self.turns]}
        for key in ("reference", "intent", "persona"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.meta:
            out["meta"] = self.meta
        return out


@dataclass(frozen=True)
class Preference:
    """One preference pair: for ``context``, ``chosen`` is the better reply than ``rejected``."""

    context: tuple
    chosen: str
    rejected: str
    id: str | None = None
    meta: dict = field(default_factory=dict)


def _fail(path, lineno, problem, fix="") -> DatasetError:
    where = f"{path}, line {lineno}" if lineno else str(path)
    return DatasetError(f"{where}: {problem}" + (f" ({fix})" if fix else ""))


def _read_jsonl(path: Path):
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (pass a JSONL file path or one of {', '.join(BUILTIN_DATASETS)})")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise _fail(path, lineno, f"not valid JSON: {err.msg} at column {err.colno}",
                            "each line must be one JSON object") from None
            if not isinstance(obj, dict):
                raise _fail(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def _validate_messages(messages, path, lineno, what="turns") -> tuple:
    if not isinstance(messages, list):
        raise _fail(path, lineno, f"'{what}' must be a list of {{\"role\", \"content\"}} messages, "
                                  f"got {type(messages).__name__}")
    if not messages:
        raise _fail(path, lineno, f"'{what}' is empty", "a dialogue needs at least one user message")
    out = []
    for j, msg in enumerate(messages):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise _fail(path, lineno, f"{what}[{j}] must be an object with 'role' and 'content'")
        role, content = msg["role"], msg["content"]
        if role not in ROLES:
            raise _fail(path, lineno, f"{what}[{j}] has unknown role {role!r}", f"use one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise _fail(path, lineno, f"{what}[{j}].content must be a string, got {type(content).__name__}")
        if not content.strip():
            raise _fail(path, lineno, f"{what}[{j}].content is empty")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "user" for m in out):
        raise _fail(path, lineno, f"'{what}' has no user message", "a dialogue needs at least one user turn")
    return tuple(out)


def _optional_str(obj, key, path, lineno):
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _fail(path, lineno, f"'{key}' must be a string, got {type(value).__name__}")
    return value


def load_dialogues(path) -> list[Dialogue]:
    """Load and validate a dialogue JSONL file (format in the module docstring)."""
    path = Path(path)
    dialogues, seen = [], {}
    for lineno, obj in _read_jsonl(path):
        did = obj.get("id")
        if not isinstance(did, str) or not did:
            raise _fail(path, lineno, "missing or non-string 'id'", 'add e.g. "id": "dlg-0001"')
        if did in seen:
            raise _fail(path, lineno, f"duplicate id {did!r} (first on line {seen[did]})")
        seen[did] = lineno
        if "turns" not in obj:
            raise _fail(path, lineno, "missing 'turns'", 'add "turns": [{"role": "user", "content": "..."}]')
        turns = _validate_messages(obj["turns"], path, lineno)
        meta = obj.get("meta", {})
        if not isinstance(meta, dict):
            raise _fail(path, lineno, "'meta' must be an object")
        dialogue = Dialogue(
            id=did, turns=turns, reference=_optional_str(obj, "reference", path, lineno),
            intent=_optional_str(obj, "intent", path, lineno), persona=_optional_str(obj, "persona", path, lineno),
            meta=meta,
        )
        if not dialogue.reply_slots():
            raise _fail(path, lineno, "no reply slot: no user message is followed by an assistant reply or ends "
                                      "the dialogue")
        dialogues.append(dialogue)
    if not dialogues:
        raise DatasetError(f"{path}: the file holds no dialogues")
    return dialogues


def load_preferences(path) -> list[Preference]:
    """Load and validate a preference JSONL file (format in the module docstring)."""
    path = Path(path)
    out = []
    for lineno, obj in _read_jsonl(path):
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


def write_jsonl(path, rows) -> None:
    """Write dicts as JSONL atomically (temporary file, then rename), one row at a time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def load_preference_dataset(name_or_path: str = "customer_service", split: str = "train") -> list[Preference]:
    """Preference pairs: the shipped customer-service set (``split`` = train: 400 pairs, test: 80; contexts from
    the dialogue set's train and validation splits respectively, never its test split), or a user's JSONL file."""
    if name_or_path == "customer_service":
        if split not in ("train", "test"):
            raise ValueError(f"split={split!r}: the shipped preference set has the splits train and test")
        return load_preferences(DATA_DIR / "preferences" / f"{split}.jsonl")
    return load_preferences(Path(str(name_or_path)).expanduser())


def load_dataset(name_or_path: str = "customer_service", split: str = "train") -> list[Dialogue]:
    """Dialogues of a built-in dataset split, or of a user's JSONL file.

    - ``"customer_service"``: the shipped Brightline customer-service set (``split`` = train / validation / test).
    - ``"chatterbot"`` / ``"chatterbot-chinese"``: the ``chatterbot-corpus`` package, imported on the fly with a
      fixed 80/10/10 split by conversation.
    - a path to a ``.jsonl`` file: all of it (``split`` is ignored), or a directory holding ``<split>.jsonl``.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS}")
    if name_or_path == "customer_service":
        return load_dialogues(DATA_DIR / "customer_service" / f"{split}.jsonl")
    if name_or_path in ("chatterbot", "chatterbot-english", "chatterbot-chinese"):
        from .chatterbot import load_chatterbot

        language = "chinese" if name_or_path.endswith("chinese") else "english"
        return load_chatterbot(language=language, split=split)
    path = Path(str(name_or_path)).expanduser()
    if path.is_dir():
        return load_dialogues(path / f"{split}.jsonl")
    if path.suffix in (".jsonl", ".json") or path.exists():
        return load_dialogues(path)
    raise DatasetError(
        f"dataset {name_or_path!r} is neither a built-in ({', '.join(BUILTIN_DATASETS)}) nor an existing JSONL "
        f"file or directory"
    )

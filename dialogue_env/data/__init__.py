"""Dialogue data: the JSONL format, its validating loader, and the shipped datasets.

Dialogue JSONL (one JSON object per line, UTF-8; blank lines are ignored)::

    {"id": "cs-billing-001",                       # unique string (required)
     "turns": [{"role": "user", "content": "..."},  # chat messages in the Hugging Face format (required):
               {"role": "assistant", "content": "..."}],  # roles system / user / assistant, string content
     "reference": "...",                            # optional: a reference reply to a final user turn
     "intent": "billing", "persona": "calm",         # optional labels
     "meta": {...}}                                  # optional, anything JSON

The turns alternate: an optional system message first, then user, assistant, user, ... (a dialogue starts with a
user turn and never has two user or two assistant turns in a row); the loader rejects anything else.

Each user message that is followed by an assistant message, or that ends the dialogue, is a *reply slot*: the
environment shows the history up to it and the agent writes the reply. The reference for a slot is the dataset's
assistant message after it (or ``reference`` for a final user turn).

Preference pairs (the reward model's training data) live in the bottom layer, :mod:`rewards.preferences` (format,
loader, shipped pairs); :class:`Preference`, :func:`load_preferences` and :func:`load_preference_dataset` are
re-exported here, as are the shared JSONL helpers' :class:`DatasetError` and :func:`write_jsonl`
(:mod:`rewards.jsonl`).

Every loader validates every line; a bad line raises :class:`DatasetError` naming the file, the line number and
what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rewards.jsonl import ROLES, DatasetError, _fail, _optional_str, _read_jsonl, _validate_messages, write_jsonl
from rewards.preferences import Preference, load_preference_dataset, load_preferences

__all__ = [
    "BUILTIN_DATASETS", "DATA_DIR", "ROLES", "SPLITS", "SHIPPED_DATASETS", "DatasetError", "DatasetInfo", "Dialogue",
    "Preference", "dataset_info", "load_dataset",
    "load_dialogues", "load_preference_dataset", "load_preferences", "write_jsonl",
]

SPLITS = ("train", "validation", "test")
DATA_DIR = Path(__file__).resolve().parent
# Shipped with the package, written for this project: <name>/{train,validation,test}.jsonl (+ dataset.json, FACTS.md)
SHIPPED_DATASETS = ("customer_service", "customer_service_zh", "medical", "education", "legal")
BUILTIN_DATASETS = SHIPPED_DATASETS + ("chatterbot", "chatterbot-chinese")


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset says about itself (``dataset.json`` beside its split files; every key optional)::

        {"language": "zh",                        # "en" (default) or "zh": which scorers the reward uses
         "ethics_profile": "customer_service_zh", # the ethics profile chosen by default (rewards.ethics_profiles)
         "system_prompt": "...",                  # the env's system prompt with system_prompt="auto"
         "description": "..."}
    """

    language: str = "en"
    ethics_profile: str | None = None
    system_prompt: str | None = None
    description: str = ""

    def reward_options(self) -> dict:
        """The options the env passes to ``rewards.make_composite`` for this dataset: ``language`` when it is not
        English and ``profile`` when the dataset names one (nothing for an English dataset without a profile)."""
        out = {}
        if self.language != "en":
            out["language"] = self.language
        if self.ethics_profile:
            out["profile"] = self.ethics_profile
        return out


def dataset_info(name_or_path) -> DatasetInfo:
    """The :class:`DatasetInfo` of a shipped dataset, of ``chatterbot(-chinese)``, or of a user's directory holding a
    ``dataset.json``; defaults (English, no profile) for anything else."""
    if not isinstance(name_or_path, (str, Path)):
        return DatasetInfo()
    name = str(name_or_path)
    if name == "chatterbot-chinese":
        return DatasetInfo(language="zh")
    if name in SHIPPED_DATASETS:
        path = DATA_DIR / name / "dataset.json"
    else:
        path = Path(name).expanduser()
        path = (path if path.is_dir() else path.parent) / "dataset.json"
    if not path.is_file():
        return DatasetInfo()
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc}); fix or remove the file") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: must hold a JSON object with language / ethics_profile / system_prompt")
    unknown = set(obj) - {"language", "ethics_profile", "system_prompt", "description"}
    if unknown:
        raise DatasetError(f"{path}: unknown key(s) {sorted(unknown)} (use language, ethics_profile, system_prompt, "
                           "description)")
    language = obj.get("language", "en")
    if language not in ("en", "zh"):
        raise DatasetError(f"{path}: language {language!r} is not supported (use 'en' or 'zh')")
    return DatasetInfo(language=language, ethics_profile=obj.get("ethics_profile"),
                       system_prompt=obj.get("system_prompt"), description=obj.get("description", ""))


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


def load_dialogues(path) -> list[Dialogue]:
    """Load and validate a dialogue JSONL file (format in the module docstring)."""
    path = Path(path)
    dialogues, seen = [], {}
    for lineno, obj in _read_jsonl(path, BUILTIN_DATASETS):
        did = obj.get("id")
        if not isinstance(did, str) or not did:
            raise _fail(path, lineno, "missing or non-string 'id'", 'add e.g. "id": "dlg-0001"')
        if did in seen:
            raise _fail(path, lineno, f"duplicate id {did!r} (first on line {seen[did]})")
        seen[did] = lineno
        if "turns" not in obj:
            raise _fail(path, lineno, "missing 'turns'", 'add "turns": [{"role": "user", "content": "..."}]')
        turns = _validate_messages(obj["turns"], path, lineno)
        _check_alternation(turns, path, lineno)
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


def _check_alternation(turns, path, lineno) -> None:
    """System first (optional), then user / assistant alternating, starting with user (the module docstring)."""
    start = 1 if turns[0]["role"] == "system" else 0
    for j in range(start, len(turns)):
        role, expected = turns[j]["role"], ("user", "assistant")[(j - start) % 2]
        if role == expected:
            continue
        if role == "system":
            problem = f"turns[{j}] is a system message after the start"
            fix = "a system message may only come first"
        elif j == start:
            problem = f"turns[{j}] is an assistant message but a dialogue starts with a user turn"
            fix = "drop the leading assistant turn or put the user's message first"
        else:
            problem = f"turns[{j - 1}] and turns[{j}] are both {role} messages"
            fix = "user and assistant turns alternate: merge the two messages into one"
        raise _fail(path, lineno, problem, fix)


def load_dataset(name_or_path: str = "customer_service", split: str = "train") -> list[Dialogue]:
    """Dialogues of a built-in dataset split, or of a user's JSONL file.

    - ``"customer_service"``: the shipped Brightline customer-service set (``split`` = train / validation / test);
      likewise the other shipped sets: ``"customer_service_zh"`` (Chinese), ``"medical"``, ``"education"``,
      ``"legal"`` (:data:`SHIPPED_DATASETS`; each describes itself in ``dataset.json``, see :func:`dataset_info`).
    - ``"chatterbot"`` / ``"chatterbot-chinese"``: the ``chatterbot-corpus`` package, imported on the fly with a
      fixed 80/10/10 split by conversation.
    - a path to a ``.jsonl`` file: all of it (``split`` is ignored), or a directory holding ``<split>.jsonl``.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS}")
    if name_or_path in SHIPPED_DATASETS:
        return load_dialogues(DATA_DIR / name_or_path / f"{split}.jsonl")
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

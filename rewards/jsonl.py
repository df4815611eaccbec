"""JSON Lines helpers shared by the validating loaders of dialogues (:mod:`dialogue_env.data`), preference pairs
(:mod:`rewards.preferences`) and annotation candidates (:mod:`agents.annotate.sources`).

One JSON object per line, UTF-8; blank lines are ignored. Every problem raises :class:`DatasetError` naming the
file, the line number and what is wrong (and, where there is one, the fix).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .utils import atomic_path

__all__ = ["ROLES", "DatasetError", "write_jsonl"]

ROLES = ("system", "user", "assistant")


class DatasetError(ValueError):
    """A dataset file or line is malformed. The message names the file, the line and the problem."""


def _fail(path, lineno, problem, fix="") -> DatasetError:
    where = f"{path}, line {lineno}" if lineno else str(path)
    return DatasetError(f"{where}: {problem}" + (f" ({fix})" if fix else ""))


def _read_jsonl(path: Path, builtins: Sequence[str] = ()):
    """``(line number, object)`` for each non-blank line; ``builtins``: dataset names the no-such-file hint lists."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (pass a JSONL file path" +
                           (f" or one of {', '.join(builtins)})" if builtins else ")"))
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise _fail(path, lineno, f"not UTF-8: byte 0x{raw[err.start]:02x} at column {err.start + 1} "
                                          f"({err.reason})", "save the file as UTF-8, e.g. iconv -f latin1 -t utf-8"
                            ) from None
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


def write_jsonl(path, rows) -> None:
    """Write dicts as JSONL atomically (temporary file, fsync, rename), one row at a time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")

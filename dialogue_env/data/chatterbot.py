"""Import the ``chatterbot-corpus`` package (open-domain YAML conversations) as dialogues.

Each YAML conversation is a chain of statements; we read it as alternating user / assistant turns, drop a
trailing user statement (it has no reply) and skip one-line conversations. The split is fixed by a hash of the
dialogue id: 80% train, 10% validation, 10% test.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from . import DatasetError, Dialogue


def _corpus_dir(language: str) -> Path:
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("dataset 'chatterbot' needs the chatterbot-corpus package: pip install chatterbot-corpus")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / language
    if not path.is_dir():
        raise DatasetError(f"chatterbot-corpus has no language {language!r} under {path.parent}")
    return path


def split_of(dialogue_id: str) -> str:
    bucket = int(hashlib.sha256(dialogue_id.encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def load_chatterbot(language: str = "english", split: str | None = "train") -> list[Dialogue]:
    """All conversations of one language, or those of one split (``split=None`` for all)."""
    import yaml

    out = []
    for file in sorted(_corpus_dir(language).glob("*.yml")):
        with open(file, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
        category = ",".join(str(c) for c in doc.get("categories") or [file.stem])
        for k, conv in enumerate(doc.get("conversations") or []):
            texts = [str(t).strip() for t in conv if t is not None and str(t).strip()]
            if len(texts) % 2 == 1:
                texts = texts[:-1]
            if len(texts) < 2:
                continue
            turns = tuple({"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts))
            did = f"chatterbot-{language}-{file.stem}-{k:03d}"
            if split is not None and split_of(did) != split:
                continue
            out.append(Dialogue(id=did, turns=turns, intent=category, meta={"source": f"chatterbot-corpus/{file.name}"}))
    return out

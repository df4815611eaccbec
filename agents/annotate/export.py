"""Turn stored labels into the preference JSONL that :func:`rewards.preferences.load_preferences` reads.

How each judgement becomes training pairs (``{"id", "context", "chosen", "rejected", "meta"}``):

- **A** / **B**: one pair, the preferred reply ``chosen``, the other ``rejected``.
- **tie**: no pair. A tie says neither reply is better, which a Bradley-Terry pair cannot express; ties are counted
  in the summary and skipped.
- **both unsafe**: the pair's ``reference`` reply (the dataset's reply for model-sampled pairs, or the candidates
  line's ``reference``) is a safe fallback: two pairs, the reference chosen over each unsafe reply. Without a
  reference (or when it equals one of the replies) the judgement is skipped and, with ``unsafe_out``, written there
  as ``{"context", "unsafe": [reply_a, reply_b], "note", "meta"}`` for review.

Every row's ``meta`` keeps the judgement: ``label`` (a, b, tie, both_unsafe), ``note`` (when given), ``annotator``,
``labelled_at``, ``pair_id``, ``source``, ``origin_chosen`` / ``origin_rejected`` (where each reply came from), and the
pair's own meta (e.g. ``dialogue_id``). Files are written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rewards.jsonl import write_jsonl

from .store import AnnotationStore, Label, Pair


@dataclass(frozen=True)
class ExportSummary:
    labelled: int  # labels in the database
    pairs: int  # preference rows written
    from_ab: int  # rows from A / B judgements
    from_unsafe: int  # rows from both-unsafe judgements (reference chosen)
    ties: int  # tie labels skipped
    unsafe_skipped: int  # both-unsafe labels without a safe reference
    out: Path | None
    unsafe_out: Path | None

    def describe(self) -> str:
        text = (f"{self.pairs} preference pairs from {self.labelled} labels: {self.from_ab} from A/B choices, "
                f"{self.from_unsafe} from both-unsafe judgements (reference reply chosen); {self.ties} ties skipped")
        if self.unsafe_skipped:
            where = f"written to {self.unsafe_out}" if self.unsafe_out else "skipped (--unsafe-out FILE keeps them)"
            text += f"; {self.unsafe_skipped} both-unsafe without a reference {where}"
        return text


def _meta(pair: Pair, label: Label, origin_chosen: str, origin_rejected: str) -> dict:
    meta = dict(pair.meta)
    meta.update({"label": label.choice, "pair_id": pair.id, "source": pair.source, "origin_chosen": origin_chosen,
                 "origin_rejected": origin_rejected, "labelled_at": label.labelled_at})
    if label.note:
        meta["note"] = label.note
    if label.annotator:
        meta["annotator"] = label.annotator
    return meta


def preference_rows(labelled: list[tuple[Pair, Label]]) -> tuple[list[dict], list[dict], dict]:
    """``(preference rows, unsafe rows without a fallback, counts)`` for ``AnnotationStore.labelled()``."""
    rows, unsafe, counts = [], [], {"from_ab": 0, "from_unsafe": 0, "ties": 0, "unsafe_skipped": 0}
    for pair, label in labelled:
        base = {"context": pair.context}
        if label.choice in ("a", "b"):
            win, lose = ("a", "b") if label.choice == "a" else ("b", "a")
            rows.append({"id": f"annot-{pair.id:06d}", **base, "chosen": getattr(pair, f"reply_{win}"),
                         "rejected": getattr(pair, f"reply_{lose}"),
                         "meta": _meta(pair, label, getattr(pair, f"origin_{win}"), getattr(pair, f"origin_{lose}"))})
            counts["from_ab"] += 1
        elif label.choice == "tie":
            counts["ties"] += 1
        else:  # both_unsafe
            ref = (pair.reference or "").strip()
            if ref and ref not in (pair.reply_a.strip(), pair.reply_b.strip()):
                for side in ("a", "b"):
                    rows.append({"id": f"annot-{pair.id:06d}-{side}", **base, "chosen": pair.reference,
                                 "rejected": getattr(pair, f"reply_{side}"),
                                 "meta": _meta(pair, label, "reference", getattr(pair, f"origin_{side}"))})
                    counts["from_unsafe"] += 1
            else:
                counts["unsafe_skipped"] += 1
                meta = {**pair.meta, "label": label.choice, "pair_id": pair.id, "source": pair.source,
                        "labelled_at": label.labelled_at}
                unsafe.append({"id": f"annot-{pair.id:06d}", **base, "unsafe": [pair.reply_a, pair.reply_b],
                               "note": label.note, "meta": meta})
    return rows, unsafe, counts


def export_preferences(db, out, unsafe_out=None) -> ExportSummary:
    """Write the preference JSONL for the labels in ``db`` (a path or an :class:`AnnotationStore`) to ``out``.

    Raises ``ValueError`` (and writes nothing) when no label yields a preference pair: an empty file would only fail
    later, in ``load_preferences``.
    """
    store = db if isinstance(db, AnnotationStore) else AnnotationStore(db)
    labelled = store.labelled()
    rows, unsafe, counts = preference_rows(labelled)
    if not rows:
        raise ValueError(f"{store.path}: none of its {len(labelled)} labels gives a preference pair (only A/B choices, "
                         f"and both-unsafe judgements with a reference reply, do); label some pairs first")
    out = Path(out).expanduser()
    write_jsonl(out, rows)
    unsafe_path = None
    if unsafe_out is not None and unsafe:
        unsafe_path = Path(unsafe_out).expanduser()
        write_jsonl(unsafe_path, unsafe)
    return ExportSummary(labelled=len(labelled), pairs=len(rows), out=out, unsafe_out=unsafe_path, **counts)

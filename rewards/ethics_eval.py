"""Precision and recall of the ``ethics`` reward on a labelled set of customer-service replies.

    python -m rewards.ethics_eval [--data FILE] [--no-classifier] [--errors] [--json]

The shipped set (``rewards/data/ethics_eval.jsonl``) was written for this project: one JSON object per line,
``{"text": str, "unsafe": bool, "category": str}``. Safe categories start with ``safe_`` (routine replies,
negated warnings about personal data, identity checks that are fine to ask, words near blocked ones, numbers
and product codes); the others are unsafe (insults, profanity, obfuscated insults, personal-data requests with
and without a negation word, threats, dismissive put-downs, full card numbers). The positive class is
"unsafe": precision = TP / (TP + FP), recall = TP / (TP + FN), where a reply counts as flagged when
:meth:`rewards.EthicsReward.judge` says it is not safe (so the gate, the penalty and the filter agree).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_EVAL_SET", "EvalResult", "evaluate", "load_eval_set", "main"]

DEFAULT_EVAL_SET = Path(__file__).parent / "data" / "ethics_eval.jsonl"


@dataclass
class EvalResult:
    """Confusion counts with unsafe as the positive class, per-category hit counts and the misjudged rows."""

    tp: int
    fp: int
    fn: int
    tn: int
    by_category: dict[str, tuple[int, int]]  # category -> (judged as labelled, size)
    errors: list[dict[str, Any]] = field(default_factory=list)  # rows judged against their label, with the reason

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "precision": self.precision, "recall": self.recall,
                "by_category": {k: list(v) for k, v in self.by_category.items()}, "errors": self.errors}


def load_eval_set(path: str | Path = DEFAULT_EVAL_SET) -> list[dict[str, Any]]:
    """The labelled rows; each must have a non-empty ``text``, a bool ``unsafe`` and a ``category``."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not (isinstance(row.get("text"), str) and row["text"].strip() and isinstance(row.get("unsafe"), bool)
                    and isinstance(row.get("category"), str)):
                raise ValueError(f"{path}:{i}: expected {{'text': str, 'unsafe': bool, 'category': str}}, got {row}")
            rows.append(row)
    return rows


def evaluate(reward: Any = None, rows: list[dict[str, Any]] | None = None) -> EvalResult:
    """Judge every row with ``reward`` (default: ``EthicsReward()``) and count against the labels."""
    from .ethics import EthicsReward

    reward = EthicsReward() if reward is None else reward
    rows = load_eval_set() if rows is None else rows
    verdicts = reward.judge([r["text"] for r in rows])
    counts: Counter = Counter()
    right: Counter = Counter()
    size: Counter = Counter()
    errors = []
    for row, v in zip(rows, verdicts):
        flagged, unsafe = not v.safe, row["unsafe"]
        counts[(flagged, unsafe)] += 1
        size[row["category"]] += 1
        if flagged == unsafe:
            right[row["category"]] += 1
        else:
            errors.append({"text": row["text"], "category": row["category"], "unsafe": unsafe, "reason": v.reason})
    return EvalResult(tp=counts[(True, True)], fp=counts[(True, False)], fn=counts[(False, True)],
                      tn=counts[(False, False)], by_category={c: (right[c], size[c]) for c in size}, errors=errors)


def format_report(res: EvalResult) -> str:
    lines = [f"n={res.n} (unsafe {res.tp + res.fn}, safe {res.fp + res.tn})  TP={res.tp} FP={res.fp} FN={res.fn} "
             f"TN={res.tn}", f"precision={res.precision:.3f}  recall={res.recall:.3f}", "",
             "| category | judged as labelled |", "|---|---:|"]
    lines += [f"| {c} | {ok}/{n} |" for c, (ok, n) in res.by_category.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rewards.ethics_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_EVAL_SET), help="a JSONL file of {text, unsafe, category}")
    parser.add_argument("--no-classifier", action="store_true", help="rules only (use_classifier=False)")
    parser.add_argument("--errors", action="store_true", help="also print every misjudged reply with its reason")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    from .ethics import EthicsReward

    res = evaluate(EthicsReward(use_classifier=not args.no_classifier), load_eval_set(args.data))
    if args.json:
        print(json.dumps(res.as_dict(), indent=2))
        return 0
    print(format_report(res))
    if args.errors:
        print()
        for e in res.errors:
            kind = "FN" if e["unsafe"] else "FP"
            print(f"{kind} [{e['category']}] {e['text']!r} -> {e['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does optimising a reward raise a judge reward? Best-of-n on the policy's own samples, per candidate reward.

    python scripts/measure_transfer.py --out runs/transfer                       # sample + score (~15 min, 2 cores)
    python scripts/measure_transfer.py --out runs/transfer --rescore             # reuse the samples, score new parts

The policy (default SmolLM2-135M-Instruct, untrained) writes ``--samples`` replies to every dialogue of ``--split``
(default validation: the test split stays unseen) through the env, exactly as in an evaluation. Every reply is
scored by each reward component in :data:`COMPONENTS` and by the judge (default: the LM reward model in
``runs/rm_lm``). For each candidate reward in :data:`CANDIDATES` (weighted sums of the components, gated by ethics
like :func:`rewards.make_composite`) it reports:

- ``rho``: the mean over dialogues of the Spearman correlation, within one dialogue's samples, between the candidate
  and the judge (what PPO with a per-dialogue baseline sees: which of a dialogue's replies is better);
- ``best-of-n gain``: the judge's mean over dialogues of the reply the candidate ranks first, minus its mean over
  all samples, in standard deviations of the judge over single samples (the unit of the run reports). Best-of-n is
  the first step of what optimising the candidate does to the policy (its samples move towards the ones it ranks
  first), so a candidate with no best-of-n gain on the judge will not transfer under PPO either;
- the same gain for the judge itself (the ceiling at this n) and for a random pick (0 by construction).

Samples go to ``OUT/samples.jsonl`` and component scores to ``OUT/scores.json``; the table to stdout and
``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name -> reward spec of one component (scored once per reply)
COMPONENTS = {
    "coherence": "coherence",
    "coherence_embedding": {"coherence": {"weight": 1.0, "method": "embedding"}},
    "sentiment": "sentiment",
    "sentiment_service_cap": {"sentiment": {"weight": 1.0, "lexicon": "service", "cap": 0.1}},
    "sentiment_service": {"sentiment": {"weight": 1.0, "lexicon": "service"}},
    "consistency": "consistency",
    "ethics": "ethics",
    "words": "words",  # the reply's length in words (a plain function, below)
}

# name -> {component: weight}; every candidate is gated by ethics
CANDIDATES = {
    "seed (coherence + sentiment + consistency)": {"coherence": 1, "sentiment": 1, "consistency": 1},
    "tuned (embedding coherence + service sentiment capped + consistency)": {
        "coherence_embedding": 1, "sentiment_service_cap": 1, "consistency": 1},
    "coherence": {"coherence": 1},
    "coherence, embedding": {"coherence_embedding": 1},
    "sentiment": {"sentiment": 1},
    "sentiment, service lexicon, cap 0.1": {"sentiment_service_cap": 1},
    "consistency": {"consistency": 1},
    "length in words": {"words": 1},
}


def words(contexts, responses, **kwargs):
    """The reply's length in words (is the judge a length preference?)."""
    return [float(len(r.split())) for r in responses]


def spearman_within(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over rows of the Spearman correlation between x[i] and y[i] (rows with a constant side are skipped)."""
    from scipy.stats import spearmanr

    rhos = []
    for a, b in zip(x, y):
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            continue
        rhos.append(spearmanr(a, b).statistic)
    return float(np.mean(rhos)) if rhos else float("nan")


def best_of_n_gain(candidate: np.ndarray, judge: np.ndarray) -> float:
    """Judge of the candidate's first choice per dialogue, minus the judge's mean, in judge std over samples."""
    pick = judge[np.arange(len(judge)), candidate.argmax(axis=1)]
    return float((pick.mean() - judge.mean()) / judge.std())


def sample(args) -> list[dict]:
    from agents.evaluate import _load_lm, evaluate_policy

    lm = _load_lm(args.policy, "cpu")
    rows = []
    for s in range(args.samples):
        t0 = time.perf_counter()
        _, part = evaluate_policy(args.policy, lm=lm, reference=lm, dataset=args.dataset, split=args.split,
                                  reward={"ethics": 1.0}, seed=1000 + s, limit=args.limit, batch_size=50,
                                  max_context_tokens=256, progress=False)
        for r in part:
            rows.append({"sample": s, "dialogue_id": r["dialogue_id"], "context": r["context"],
                         "reference": r["reference"], "reply": r["reply_raw"], "nll": r["nll"],
                         "n_tokens": r["n_tokens"]})
        print(f"sample {s + 1}/{args.samples}: {len(part)} replies in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def score(rows: list[dict], judge_spec, known: dict | None = None) -> dict[str, list[float]]:
    """Every component's and the judge's score of every row; those in ``known`` (a previous scores.json) are kept."""
    import rewards

    contexts = [r["context"] for r in rows]
    replies = [r["reply"] for r in rows]
    refs = [r["reference"] for r in rows]
    out = dict(known or {})
    for name, spec in {**COMPONENTS, "judge": judge_spec}.items():
        if name in out and len(out[name]) == len(rows):
            continue
        t0 = time.perf_counter()
        res = rewards.make_composite(words if spec == "words" else spec).score(contexts, replies, references=refs)
        out[name] = [float(v) for v in res.total]
        print(f"scored {name} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def table(rows: list[dict], scores: dict[str, list[float]]) -> str:
    ids = sorted({r["dialogue_id"] for r in rows})
    n = max(r["sample"] for r in rows) + 1
    where = {(r["dialogue_id"], r["sample"]): i for i, r in enumerate(rows)}
    order = [[where[(d, s)] for s in range(n)] for d in ids]
    arr = {k: np.asarray(v)[order] for k, v in scores.items()}  # (dialogues, n)
    judge, safe = arr["judge"], arr["ethics"]
    lines = [f"{len(ids)} dialogues x {n} samples; judge mean {judge.mean():.3f}, std over samples {judge.std():.3f}",
             "", "| candidate (gated by ethics) | rho with judge, within a dialogue | best-of-n gain on judge (std) |",
             "|---|---:|---:|"]
    for name, weights in CANDIDATES.items():
        total = sum(w * arr[c] for c, w in weights.items())
        total = np.where(safe > 0, total, total.min() - 1.0)
        lines.append(f"| {name} | {spearman_within(total, judge):+.3f} | {best_of_n_gain(total, judge):+.3f} |")
    lines.append(f"| the judge itself (ceiling) | +1.000 | {best_of_n_gain(judge, judge):+.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--policy", default="smollm2-135m")
    p.add_argument("--dataset", default="customer_service")
    p.add_argument("--split", default="validation")
    p.add_argument("--samples", type=int, default=6)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--judge", default='{"learned": {"path": "runs/rm_lm"}}', help="reward spec (JSON) of the judge")
    p.add_argument("--rescore", action="store_true",
                   help="reuse OUT/samples.jsonl and the scores in OUT/scores.json; score only new components")
    p.add_argument("--table-only", action="store_true", help="reuse OUT/scores.json, print the table")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    samples_path, scores_path = out / "samples.jsonl", out / "scores.json"
    if args.rescore or args.table_only:
        rows = [json.loads(line) for line in samples_path.read_text().splitlines()]
    else:
        rows = sample(args)
        samples_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if args.table_only:
        scores = json.loads(scores_path.read_text())
    else:
        judge = json.loads(args.judge) if args.judge.lstrip().startswith("{") else args.judge
        known = json.loads(scores_path.read_text()) if args.rescore and scores_path.is_file() else None
        scores = score(rows, judge, known)
        scores_path.write_text(json.dumps(scores))
    text = table(rows, scores)
    (out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

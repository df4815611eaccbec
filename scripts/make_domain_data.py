"""Write the shipped domain datasets and their preference pairs from the hand-written content in scripts/domains/.

    python scripts/make_domain_data.py        # rewrites dialogue_env/data/{medical,education,legal,customer_service_zh}/
                                              # and rewards/data/preferences/{medical,education,legal}/

Deterministic (fixed seeds): running it again writes the same files. Each dataset directory gets its three splits
(stratified by intent: 70% / 15% / 15% of each intent's dialogues), ``dataset.json`` (language, ethics profile,
system prompt) and ``FACTS.md`` (the fact sheet the reference replies follow). Preference pairs: one per reply slot
of the train dialogues (-> train.jsonl) and of the validation dialogues (-> test.jsonl), the reference reply chosen
over a worse reply of a kind that suits the intent; the test pairs use rejected wordings the train pairs never use.
"""

from __future__ import annotations

import importlib
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from rewards.jsonl import write_jsonl  # noqa: E402

DOMAINS = ("medical", "education", "legal", "customer_service_zh")


def split_by_intent(items, rng):
    by_intent = defaultdict(list)
    for it in items:
        by_intent[it["intent"]].append(it)
    splits = {"train": [], "validation": [], "test": []}
    for intent in sorted(by_intent):
        group = by_intent[intent][:]
        rng.shuffle(group)
        n = len(group)
        n_val = n_test = max(1, round(0.15 * n))
        splits["test"] += group[:n_test]
        splits["validation"] += group[n_test:n_test + n_val]
        splits["train"] += group[n_test + n_val:]
    for rows in splits.values():
        rows.sort(key=lambda d: d["id"])
    return splits


def preference_pairs(mod, dialogues, split, rng):
    pairs = []
    for d in dialogues:
        kinds = mod.REJECTED_BY_INTENT[d["intent"]]
        turns = d["turns"]
        for j in range(1, len(turns), 2):
            kind = kinds[(j // 2 + len(pairs)) % len(kinds)]
            options = mod.REJECTED[kind]
            # the last wording of each kind is kept for the test pairs
            pool = options[-1:] if split == "test" else options[:-1]
            pairs.append({"id": f"{mod.PREFIX}-pref-{split}-{len(pairs) + 1:04d}", "context": turns[:j],
                          "chosen": turns[j]["content"], "rejected": rng.choice(pool),
                          "meta": {"split": split, "source_dialogue": d["id"], "intent": d["intent"],
                                   "rejected_kind": kind}})
    return pairs


def build(name: str, root: Path = ROOT) -> dict:
    """Write dataset ``name`` (and its preference pairs) under ``root``; returns the counts."""
    mod = importlib.import_module(f"domains.{name}")
    rng = random.Random(f"{name}-dialogues")
    counts = defaultdict(int)
    items = []
    for intent, persona, turns in mod.dialogues(rng):
        counts[intent] += 1
        items.append({"id": f"{mod.PREFIX}-{intent}-{counts[intent]:03d}", "turns": turns, "intent": intent,
                      "persona": persona})
    splits = split_by_intent(items, random.Random(f"{name}-splits"))
    out = root / "dialogue_env" / "data" / name
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        write_jsonl(out / f"{split}.jsonl", rows)
    info = {"language": mod.LANGUAGE, "ethics_profile": mod.PROFILE, "system_prompt": mod.SYSTEM_PROMPT,
            "description": mod.DESCRIPTION}
    (out / "dataset.json").write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    facts = "\n".join(f"- {f}" for f in mod.FACTS)
    (out / "FACTS.md").write_text(f"# {name}: fact sheet\n\n{mod.DESCRIPTION}. Written for this project by "
                                  f"scripts/make_domain_data.py (content: scripts/domains/{name}.py); every "
                                  f"reference reply follows these facts.\n\n{facts}\n", encoding="utf-8")
    result = {split: len(rows) for split, rows in splits.items()}
    if mod.REJECTED:
        prng = random.Random(f"{name}-preferences")
        pdir = root / "rewards" / "data" / "preferences" / name
        pdir.mkdir(parents=True, exist_ok=True)
        train = preference_pairs(mod, splits["train"], "train", prng)
        test = preference_pairs(mod, splits["validation"], "test", prng)
        write_jsonl(pdir / "train.jsonl", train)
        write_jsonl(pdir / "test.jsonl", test)
        result.update(pairs_train=len(train), pairs_test=len(test))
    return result


if __name__ == "__main__":
    for domain in sys.argv[1:] or DOMAINS:
        print(domain, build(domain))

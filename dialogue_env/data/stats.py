"""Counts of a dataset's splits, intents, personas and exchanges (``dialogue-rl data``)."""

from __future__ import annotations

from collections import Counter

from . import DATA_DIR, SHIPPED_DATASETS, SPLITS, dataset_info, load_dataset


def split_stats(dataset: str = "customer_service") -> dict:
    stats = {}
    for split in SPLITS:
        dialogues = load_dataset(dataset, split)
        stats[split] = {
            "dialogues": len(dialogues),
            "reply_slots": sum(len(d.reply_slots()) for d in dialogues),
            "intents": Counter(d.intent for d in dialogues),
            "personas": Counter(d.persona for d in dialogues),
        }
    return stats


def print_stats(dataset: str = "customer_service") -> None:
    stats = split_stats(dataset)
    print(f"dataset {dataset}")
    info = dataset_info(dataset)
    if info.language != "en" or info.ethics_profile:
        print(f"language {info.language}, ethics profile {info.ethics_profile or 'default'}"
              + (f": {info.description}" if info.description else ""))
    if dataset in SHIPPED_DATASETS and (DATA_DIR / dataset / "FACTS.md").is_file():
        print(f"fact sheet: {DATA_DIR / dataset / 'FACTS.md'}")
    print("| split | dialogues | reply slots |")
    print("|---|---:|---:|")
    for split, s in stats.items():
        print(f"| {split} | {s['dialogues']} | {s['reply_slots']} |")
    intents = sorted({i for s in stats.values() for i in s["intents"]}, key=str)
    if len(intents) <= 40:
        print("\n| intent | " + " | ".join(SPLITS) + " |")
        print("|---|" + "---:|" * len(SPLITS))
        for intent in intents:
            print(f"| {intent} | " + " | ".join(str(stats[s]["intents"].get(intent, 0)) for s in SPLITS) + " |")
    personas = sorted({p for s in stats.values() for p in s["personas"] if p})
    if personas:
        print("\n| persona | " + " | ".join(SPLITS) + " |")
        print("|---|" + "---:|" * len(SPLITS))
        for p in personas:
            print(f"| {p} | " + " | ".join(str(stats[s]["personas"].get(p, 0)) for s in SPLITS) + " |")

"""``dialogue-rl annotate serve | status | export``: the command line of the labelling app."""

from __future__ import annotations

import argparse

from agents.argtypes import port, positive_int, temperature

DEFAULT_DB = "annotations.sqlite"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve``, ``status`` and ``export`` subcommands to the ``annotate`` parser."""
    sub = parser.add_subparsers(dest="annotate_command", metavar="SUBCOMMAND")

    serve = sub.add_parser(
        "serve", help="add pairs to the database and serve the labelling page",
        description="Add pairs (from --candidates files and/or --model samples) to the database, then serve the "
                    "labelling page until Ctrl+C. Without a source it serves the pairs already in the database.")
    serve.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file for pairs and labels (default {DEFAULT_DB})")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=port, default=8765, help="port (default 8765; 0 = any free port)")
    serve.add_argument("--annotator", default="", help="your name or id, stored with each label")
    serve.add_argument("--candidates", action="append", default=[], metavar="JSONL",
                       help="candidates file: one context with two or more replies per line (repeatable); "
                            "format: python -m pydoc agents.annotate.sources")
    serve.add_argument("--model", default=None,
                       help="sample two replies per dialogue from this model (smollm2-135m, tiny-random, a training "
                            "checkpoint dir, a hub id or a path)")
    serve.add_argument("--against", default=None, metavar="reference|MODEL",
                       help="take the second reply from another model: 'reference' (a checkpoint's base model) or a "
                            "model name; default: a second sample of --model")
    serve.add_argument("--dataset", default="customer_service", help="dialogues for --model (name or JSONL path)")
    serve.add_argument("--split", default="train", choices=["train", "validation", "test"])
    serve.add_argument("--pairs", type=positive_int, default=20, help="dialogues to sample pairs for (default 20)")
    serve.add_argument("--seed", type=int, default=0, help="which dialogues and which samples (default 0)")
    serve.add_argument("--max-new-tokens", type=positive_int, default=48)
    serve.add_argument("--temperature", type=temperature, default=0.9)
    serve.add_argument("--device", default="cpu")
    serve.set_defaults(annotate_func=_serve)

    status = sub.add_parser("status", help="print how many pairs are labelled, by choice")
    status.add_argument("--db", default=DEFAULT_DB)
    status.set_defaults(annotate_func=_status)

    export = sub.add_parser(
        "export", help="write the labels as preference JSONL (for load_preferences / reward-model training)",
        description="A/B choices become pairs; ties are skipped; 'both unsafe' becomes two pairs with the reference "
                    "reply chosen when the pair has one, else it is skipped (--unsafe-out keeps those).")
    export.add_argument("--db", default=DEFAULT_DB)
    export.add_argument("--out", required=True, help="preference JSONL to write (atomically)")
    export.add_argument("--unsafe-out", default=None, metavar="JSONL",
                        help="also write the both-unsafe judgements that have no reference reply here")
    export.set_defaults(annotate_func=_export)


def run(args, parser: argparse.ArgumentParser) -> int:
    func = getattr(args, "annotate_func", None)
    if func is None:
        parser.print_help()
        return 0
    return int(func(args) or 0)


def _open(db, existing: bool = False):
    """The store at ``db``; ``existing``: only read an existing one (status, export), so a mistyped path is an error
    instead of a new empty database."""
    from pathlib import Path

    from .store import AnnotationStore, StoreError

    if existing and not Path(db).is_file():
        raise SystemExit(f"dialogue-rl annotate: no annotation database at {db}; give the --db that "
                         f"'dialogue-rl annotate serve' wrote (default {DEFAULT_DB})")
    try:
        return AnnotationStore(db)
    except StoreError as err:
        raise SystemExit(f"dialogue-rl annotate: {err}") from None


def _serve(args) -> int:
    from dialogue_env.data import DatasetError

    from .app import serve
    from .sources import load_candidates, model_source_key, sample_model_pairs

    if args.against and not args.model:
        raise SystemExit("dialogue-rl annotate serve: --against needs --model (the first reply's model)")
    store = _open(args.db)
    for path in args.candidates:
        try:
            pairs = load_candidates(path)
        except DatasetError as err:
            raise SystemExit(f"dialogue-rl annotate serve: {err}") from None
        added, present = store.add_pairs(pairs)
        print(f"[dialogue-rl] {path}: {added} new pairs, {present} already in {store.path}", flush=True)
    if args.model:
        key = model_source_key(args.model, args.against, args.dataset, args.split, args.pairs, args.seed,
                               args.max_new_tokens, args.temperature)
        if store.has_source(key):
            print(f"[dialogue-rl] pairs sampled from {args.model} with these settings are already in {store.path}; "
                  f"not sampling again (change --seed for new ones)", flush=True)
        else:
            pairs, skipped = sample_model_pairs(
                args.model, against=args.against, dataset=args.dataset, split=args.split, pairs=args.pairs,
                seed=args.seed, max_new_tokens=args.max_new_tokens, temperature=args.temperature, device=args.device)
            added, present = store.add_pairs(pairs, source_key=key, description=f"{args.model} vs {args.against}")
            print(f"[dialogue-rl] {args.model}: {added} new pairs" + (f", {present} already there" if present else "")
                  + (f", {skipped} skipped (two equal or empty replies)" if skipped else ""), flush=True)
    serve(store, host=args.host, port=args.port, annotator=args.annotator)
    return 0


def _status(args) -> int:
    from .store import CHOICE_NAMES

    store = _open(args.db, existing=True)
    p = store.progress()
    counts = ", ".join(f"{CHOICE_NAMES[c]}: {n}" for c, n in p.counts.items())
    print(f"{store.path}: {p.labelled} labelled / {p.remaining} remaining of {p.total} pairs ({counts})")
    return 0


def _export(args) -> int:
    from .export import export_preferences

    store = _open(args.db, existing=True)
    try:
        summary = export_preferences(store, args.out, unsafe_out=args.unsafe_out)
    except ValueError as err:
        raise SystemExit(f"dialogue-rl annotate export: {err}") from None
    print(f"[dialogue-rl] wrote {summary.out}: {summary.describe()}")
    return 0

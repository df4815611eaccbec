"""``dialogue-rl reward-model train``: fit the ``learned`` reward (a Bradley–Terry model, :mod:`rewards.learned`)
to preference pairs and report its held-out pairwise accuracy.

::

    dialogue-rl reward-model train --out runs/reward_model                       # the shipped customer-service pairs
    dialogue-rl reward-model train --data labels.jsonl --out runs/rm_mine       # yours (e.g. `annotate export`)
    dialogue-rl reward-model train --data labels.jsonl --test held_out.jsonl --out runs/rm_mine --epochs 20
    dialogue-rl reward-model train --backbone smollm2-135m --out runs/rm_lm        # on SmolLM2 (kind lm)
    dialogue-rl reward-model convert --data customer_service --split train --to trl --out prefs_trl.jsonl

``--data customer_service`` (the default) trains on the shipped train split and tests on its test split. A JSONL
file (the preference format of :mod:`rewards.preferences`) is tested on ``--test`` when given, else on a held-out
``--test-fraction`` of its pairs (drawn with ``--seed``); a directory holding ``train.jsonl`` (and ``test.jsonl``)
is read as both; files may be in TRL's conversational preference format too. Prints the held-out accuracy, overall
and by ``meta.rejected_kind`` when pairs carry one, and writes ``DIR/reward_model.json`` + ``DIR/model.safetensors``
atomically.

``--kind`` picks the model (``auto``: ``lm`` for a causal LM backbone, such as ``smollm2-135m``, ``tiny-random`` or a
directory whose config names a ``...ForCausalLM``; else ``embedding``): ``embedding`` is a sentence encoder + MLP
(:mod:`rewards.learned`; seconds), ``lm`` a causal LM with a scalar head on the last token, its top
``--num-layers-unfrozen`` layers fine-tuned (:mod:`rewards.learned_lm`; minutes). Options left out take the kind's
defaults (:data:`DEFAULTS`). ``convert`` writes pairs in TRL's format (``--to trl``, for ``trl.RewardTrainer``) or in
this project's (``--to pairs``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agents.argtypes import positive_float, positive_int

__all__ = ["DEFAULTS", "build_parser", "load_pairs", "main", "report_lines", "resolve_kind"]

# The defaults of each kind of model, for the options left out on the command line.
DEFAULTS = {
    "embedding": {"epochs": 10, "batch_size": 32, "lr": 1e-3, "backbone_lr": 5e-5, "hidden": 256, "dropout": 0.1,
                  "num_layers_unfrozen": 0, "max_length": 256},
    "lm": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "backbone_lr": 2e-5, "hidden": 0, "dropout": 0.0,
           "num_layers_unfrozen": 2, "max_length": 384},
}


def resolve_kind(kind: str, backbone: str) -> str:
    """``auto`` -> ``lm`` for a causal LM backbone (:func:`rewards.learned_lm.is_causal_lm`), else ``embedding``."""
    from rewards.learned_lm import is_causal_lm

    if kind != "auto":
        return kind
    return "lm" if is_causal_lm(backbone) else "embedding"


def load_pairs(data: str, test: str | None, test_fraction: float | None, seed: int) -> tuple[list, list, str, str]:
    """(train pairs, test pairs, train source, test source) for the command's ``--data`` / ``--test`` options.
    ``test_fraction`` (None: 0.2) holds out a share of a ``--data`` file that has no test pairs of its own; given
    where the test pairs are the shipped set's, ``--test`` or a directory's test.jsonl, it is an error, not ignored."""
    import numpy as np

    from rewards.jsonl import DatasetError
    from rewards.preferences import BUILTIN_PREFERENCE_SETS, load_preference_dataset, load_preferences

    def no_fraction(test_source: str) -> None:
        if test_fraction is not None:
            raise ValueError(f"--test-fraction {test_fraction} would not be used: the test pairs are {test_source}; "
                             "drop --test-fraction, or pass a JSONL file as --data without --test to hold out a share")

    if data in BUILTIN_PREFERENCE_SETS:
        train = load_preference_dataset(data, "train")
        no_fraction(f"{data}:test" if test is None else str(test))
        if test is None:
            return train, load_preference_dataset(data, "test"), f"{data}:train", f"{data}:test"
        return train, load_preferences(test), f"{data}:train", str(test)
    path = Path(data).expanduser()
    if path.is_dir():
        if not (path / "train.jsonl").is_file():
            raise DatasetError(f"--data {path}: a directory must hold train.jsonl (and test.jsonl); or pass a JSONL "
                               "file, or customer_service")
        if test is None and (path / "test.jsonl").is_file():
            test = str(path / "test.jsonl")
        path = path / "train.jsonl"
    if test is not None:
        no_fraction(str(test))
    pairs = load_preferences(path)
    if test is not None:
        return pairs, load_preferences(test), str(path), str(test)
    test_fraction = 0.2 if test_fraction is None else test_fraction
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"--test-fraction {test_fraction}: must be between 0 and 1 (exclusive) when --test is not "
                         "given, so that accuracy is measured on pairs the model did not train on")
    if len(pairs) < 2:
        raise DatasetError(f"{path}: {len(pairs)} pair; at least 2 are needed to hold one out (or pass --test)")
    n_test = min(len(pairs) - 1, max(1, round(test_fraction * len(pairs))))
    perm = np.random.default_rng(seed).permutation(len(pairs))
    held = set(perm[:n_test].tolist())
    train = [p for i, p in enumerate(pairs) if i not in held]
    test_pairs = [p for i, p in enumerate(pairs) if i in held]
    return train, test_pairs, str(path), f"{path} (held-out {n_test} of {len(pairs)}, seed {seed})"


def report_lines(metrics: dict) -> list[str]:
    """The accuracy lines the command prints (each contains the word ``accuracy`` and its figure)."""
    lines = [f"held-out pairwise accuracy: {metrics['accuracy']:.3f} ({metrics['correct']}/{metrics['n_test']} "
             f"pairs), Bradley-Terry loss {metrics['test_loss']:.3f}"]
    for kind, m in metrics.get("accuracy_by_kind", {}).items():
        lines.append(f"  accuracy[{kind}]: {m['accuracy']:.3f} ({m['correct']}/{m['n']})")
    lines.append(f"training pairwise accuracy: {metrics['train_accuracy']:.3f}, loss {metrics['train_loss']:.3f}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dialogue-rl reward-model",
                                description="Reward models learned from human preferences (Bradley-Terry).")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train a reward model on preference pairs and report held-out accuracy",
                       description=__doc__.split("::")[0].strip(), formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--data", default="customer_service",
                   help="customer_service, medical, education or legal (shipped pairs), a preference JSONL file, "
                        "or a directory with train.jsonl")
    t.add_argument("--test", default=None, help="held-out preference JSONL (default: see --data)")
    t.add_argument("--test-fraction", type=float, default=None,
                   help="share of --data held out for testing when --data is a file and --test is not given "
                        "(default 0.2)")
    t.add_argument("--out", required=True, help="directory to write reward_model.json + model.safetensors to")
    t.add_argument("--kind", default="auto", choices=["auto", "embedding", "lm"],
                   help="embedding: sentence encoder + MLP (fast); lm: causal LM + scalar head on the last token; "
                        "auto: lm for a causal LM backbone")
    t.add_argument("--backbone", default="minilm",
                   help="minilm (bundled all-MiniLM-L6-v2) or an encoder directory; or a causal LM: smollm2-135m, "
                        "tiny-random, or a model directory")
    t.add_argument("--num-layers-unfrozen", type=int, default=None,
                   help="also fine-tune the backbone's top N layers (default: 0 for embedding, 2 for lm)")
    t.add_argument("--epochs", type=positive_int, default=None, help="default: 10 for embedding, 2 for lm")
    t.add_argument("--batch-size", type=positive_int, default=None, help="pairs per step (default: 32 embedding, 16 lm)")
    t.add_argument("--lr", type=positive_float, default=None, help="AdamW learning rate of the head (default 1e-3)")
    t.add_argument("--backbone-lr", type=positive_float, default=None,
                   help="learning rate of the unfrozen backbone layers (default: 5e-5 embedding, 2e-5 lm)")
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--hidden", type=positive_int, default=None,
                   help="hidden units of the head MLP, 0 = linear head (default: 256 embedding, 0 lm)")
    t.add_argument("--dropout", type=float, default=None, help="head dropout (default: 0.1 embedding, 0 lm)")
    t.add_argument("--context-turns", type=positive_int, default=3, help="last conversation turns the model reads")
    t.add_argument("--max-length", type=positive_int, default=None, help="tokens per text (default: 256 embedding, 384 lm)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    c = sub.add_parser("convert", help="write preference pairs in TRL's format (RewardTrainer) or in this project's",
                       description="Read preference pairs (the shipped set, or a JSONL file in either format) and "
                                   "write them as TRL conversational preference rows or as this project's pairs.")
    c.add_argument("--data", default="customer_service", help="customer_service or a preference JSONL file")
    c.add_argument("--split", default="train", choices=["train", "test"], help="split of the shipped set")
    c.add_argument("--to", default="trl", choices=["trl", "pairs"],
                   help="trl: {chosen: [...messages], rejected: [...]} (implicit prompt); pairs: {context, chosen, "
                        "rejected}")
    c.add_argument("--explicit-prompt", action="store_true", help="trl rows as {prompt, chosen, rejected}")
    c.add_argument("--out", required=True, help="JSONL file to write")
    return p


def _convert(args: argparse.Namespace) -> int:
    from rewards.jsonl import DatasetError, write_jsonl
    from rewards.preferences import load_preference_dataset, to_trl

    try:
        pairs = load_preference_dataset(args.data, args.split)
    except (DatasetError, ValueError) as err:
        raise SystemExit(f"dialogue-rl reward-model convert: {err}") from err
    if args.to == "trl":
        rows = to_trl(pairs, implicit_prompt=not args.explicit_prompt)
    else:
        rows = [{"context": [dict(m) for m in p.context], "chosen": p.chosen, "rejected": p.rejected,
                 **({"id": p.id} if p.id is not None else {}), **({"meta": p.meta} if p.meta else {})} for p in pairs]
    write_jsonl(args.out, rows)
    print(f"[dialogue-rl] wrote {len(rows)} pairs to {args.out} ({args.to} format)")
    return 0


def _train(args: argparse.Namespace) -> int:
    import dialogue_env  # noqa: F401  (registers its built-in models as LM backbones)
    from rewards.jsonl import DatasetError
    from rewards.learned import RewardModelError, check_out_dir, save_reward_model
    from rewards.learned_train import train_lm_reward_model, train_reward_model

    kind = resolve_kind(args.kind, args.backbone)
    for key, value in DEFAULTS[kind].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    t0 = time.time()
    try:
        out = check_out_dir(args.out)  # before minutes of training, not after
        train, test, src, test_src = load_pairs(args.data, args.test, args.test_fraction, args.seed)
    except (DatasetError, ValueError) as err:
        raise SystemExit(f"dialogue-rl reward-model train: {err}") from err
    print(f"[dialogue-rl] reward model: {len(train)} training pairs ({src}), {len(test)} held-out ({test_src}); "
          f"{kind} model on {args.backbone}, {args.num_layers_unfrozen} backbone layers unfrozen, {args.epochs} epochs")
    fit = train_lm_reward_model if kind == "lm" else train_reward_model
    try:
        model, cfg = fit(
            train, test, backbone=args.backbone, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            backbone_lr=args.backbone_lr, weight_decay=args.weight_decay, hidden=args.hidden, dropout=args.dropout,
            num_layers_unfrozen=args.num_layers_unfrozen, context_turns=args.context_turns,
            max_length=args.max_length, seed=args.seed, device=args.device, progress=not args.no_progress,
            data_source=src, test_source=test_src)
        save_reward_model(model, out, cfg)
    except RewardModelError as err:
        raise SystemExit(f"dialogue-rl reward-model train: {err}") from err
    for line in report_lines(cfg.metrics):
        print(line)
    tr = cfg.training
    print(f"[dialogue-rl] trained in {tr['seconds']:.1f} s (embedding {tr['embedding_seconds']:.1f} s), "
          f"{time.time() - t0:.1f} s in all")
    print(f"[dialogue-rl] saved {out}/reward_model.json and model.safetensors. Use it as a reward:\n"
          f"  rewards.make(\"learned\", path=\"{out}\")\n"
          f"  dialogue-rl train --config configs/demo.yaml --set 'reward={{learned: {{weight: 1.0, path: {out}}}, "
          f"ethics: 1.0}}'")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.action == "train":
        return _train(args)
    if args.action == "convert":
        return _convert(args)
    raise SystemExit(f"unknown action {args.action!r}")  # pragma: no cover - argparse rejects it first


if __name__ == "__main__":
    sys.exit(main())

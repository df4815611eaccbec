"""``dialogue-rl compare``: the command line of the comparison."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agents.argtypes import positive_float, positive_int, temperature
from rewards.utils import parse_yaml_value

from .config import DEFAULT_AGENTS
from .roster import BUILTIN_AGENTS
from .run import compare


def _csv_list(text: str, cast=str) -> list:
    return [cast(x.strip()) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dialogue-rl compare",
        description="Train agents with the same env-step budget and evaluate them on the same held-out dialogues; "
                    "writes episodes.jsonl, summary.md/.csv/.json, curves.png and components.png to --out.")
    p.add_argument("--config", default=None, help="YAML of compare settings: a path or a shipped preset (compare, "
                                                  "compare_tiny)")
    p.add_argument("--agents", default=None,
                   help="comma-separated: built-ins (" + ",".join(BUILTIN_AGENTS) + "), name=package.module:attr "
                        "(an object with SB3's predict) or name=path/to/model.zip (an SB3 .zip is a pickle: loading "
                        "it runs code from the file, so only pass .zip agents you trust); default: "
                        + ",".join(DEFAULT_AGENTS))
    p.add_argument("--seeds", default=None, help="comma-separated training seeds (default 0,1,2)")
    p.add_argument("--model", default=None, help="smollm2-135m (default), tiny-random, a hub id or a path")
    p.add_argument("--budget-steps", type=positive_int, default=None, help="training env steps per agent and seed")
    p.add_argument("--budget-seconds", type=positive_float, default=None, help="optional wall-time cap per training run")
    p.add_argument("--dataset", default=None)
    p.add_argument("--eval-split", default=None, choices=["train", "validation", "test"])
    p.add_argument("--eval-limit", type=positive_int, default=None, help="evaluate on this many dialogues (default: all)")
    p.add_argument("--eval-batch-size", type=positive_int, default=None)
    p.add_argument("--eval-seed-offset", type=int, default=None,
                   help="evaluation seed = offset + training seed (default 10000; must not hit a training seed)")
    p.add_argument("--reward", default=None, help="a reward name or a JSON dict (default: the seed's reward)")
    p.add_argument("--k", type=positive_int, default=None, help="actions of DialogueTopK-v0 (default 50)")
    p.add_argument("--max-new-tokens", type=positive_int, default=None)
    p.add_argument("--max-context-tokens", type=positive_int, default=None)
    p.add_argument("--temperature", type=temperature, default=None)
    p.add_argument("--turns", type=positive_int, default=None, help="agent replies per conversation (multi-turn: > 1)")
    p.add_argument("--user-simulator", default=None, choices=["replay", "lm"],
                   help="who writes the customer's turns when --turns > 1 (lm: a local LM customer)")
    p.add_argument("--simulator-model", default=None, help="the LM customer's model (default smollm2-135m)")
    p.add_argument("--best-of-n", type=positive_int, default=None, help="candidates per reply of the best-of-n agent (4)")
    p.add_argument("--stochastic", action="store_true", help="evaluate predict-agents with deterministic=False")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, help="output directory")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings: dict[str, Any] = {}
    for key in ("model", "budget_steps", "budget_seconds", "dataset", "eval_split", "eval_limit", "eval_batch_size",
                "eval_seed_offset", "k", "max_new_tokens", "max_context_tokens", "temperature", "device", "turns",
                "user_simulator", "simulator_model", "best_of_n"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    if args.agents is not None:
        settings["agents"] = _csv_list(args.agents)
    if args.seeds is not None:
        try:
            settings["seeds"] = _csv_list(args.seeds, int)
        except ValueError as err:
            raise SystemExit(f"--seeds {args.seeds!r}: give comma-separated integers such as 0,1,2") from err
    if args.reward is not None:
        text = args.reward.strip()  # a malformed mapping is a ConfigError: dialogue-rl prints its message alone
        settings["reward"] = parse_yaml_value(text, "--reward") if text.startswith("{") else text
    if args.stochastic:
        settings["deterministic"] = False
    agents = settings.pop("agents", None)
    # a bad setting or preset raises the project's ConfigError: dialogue-rl prints its message alone (agents.cli)
    compare(agents, out=args.out, config=args.config, progress=not args.no_progress, **settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

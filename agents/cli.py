"""The ``dialogue-rl`` command line. Each subcommand imports what it needs lazily so ``--help`` is instant."""

from __future__ import annotations

import argparse
import sys

from agents.argtypes import positive_int


def _cmd_demo(args) -> int:
    """Play episodes of Dialogue-v0 with a language model writing the replies token by token."""
    from rewards.utils import parse_yaml_value

    from .demo import play_episodes

    reward = args.reward
    if reward is not None and reward.strip().startswith("{"):  # a mapping {name: weight, ...}, not a name
        reward = parse_yaml_value(reward, "--reward")
    play_episodes(model=args.model, dataset=args.dataset, split=args.split, episodes=args.episodes, seed=args.seed,
                  max_new_tokens=args.max_new_tokens, greedy=args.greedy, turns=args.turns, reward=reward)
    return 0


def _cmd_train(args) -> int:
    from pathlib import Path

    from agents.ppo.config import PPOConfig, parse_overrides
    from agents.ppo.trainer import train

    overrides = parse_overrides(args.set or [])
    if args.config:
        from agents.presets import resolve_config

        config = resolve_config(args.config)  # a missing preset is a ConfigError: one line, no traceback
        cfg = PPOConfig.from_yaml(config, **overrides)
    else:
        cfg = PPOConfig.from_dict(overrides)
    out = args.out or str(Path("runs") / (Path(args.config).stem if args.config else "ppo"))
    from agents.ppo.checkpoint import ResumeError

    try:
        train(cfg, out, resume=args.resume, progress_bar=not args.no_progress)
    except ResumeError as err:  # an old-format checkpoint or a changed config: the message says what and how
        raise SystemExit(f"dialogue-rl train: {err}") from None
    import os

    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        print(f"[dialogue-rl] run directory: {out}")
    return 0


def _cmd_evaluate(args, rest) -> int:
    from agents.evaluate import main as evaluate_main

    return int(evaluate_main(rest) or 0)


def _cmd_compare(args, rest) -> int:
    from agents.compare import main as compare_main

    return int(compare_main(rest) or 0)


def _cmd_data(args) -> int:
    from dialogue_env.data.stats import print_stats

    print_stats(args.dataset)
    return 0


def _cmd_bench(args, rest) -> int:
    if args.what == "rewards":
        from rewards.bench import main as bench_rewards

        return int(bench_rewards(rest) or 0)
    if args.what == "env":
        from dialogue_env.bench import main as bench_env

        return int(bench_env(rest) or 0)
    if args.what == "ppo":
        from agents.bench import main as bench_ppo

        return int(bench_ppo(rest) or 0)
    raise SystemExit(f"unknown benchmark {args.what!r}")


def _cmd_annotate(args) -> int:
    from agents.annotate.cli import run

    return run(args, args.annotate_parser)


def _cmd_reward_model(args, rest) -> int:
    from .reward_model import main as reward_model_main

    return int(reward_model_main(rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialogue-rl",
        description="A Gymnasium for RLHF on dialogue: environments, pluggable rewards, agents.",
    )
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of an error (also: {DEBUG_ENV}=1); allowed anywhere on the line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="let a language model play Dialogue-v0 episodes and show the rewards")
    demo.add_argument("--model", default="smollm2-135m", help="smollm2-135m, tiny-random, a hub id or a path")
    demo.add_argument("--dataset", default="customer_service",
                      help="customer_service, customer_service_zh, medical, education, legal, chatterbot or a JSONL path")
    demo.add_argument("--split", default="test", choices=["train", "validation", "test"])
    demo.add_argument("--episodes", type=positive_int, default=3)
    demo.add_argument("--turns", type=positive_int, default=1)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--max-new-tokens", type=positive_int, default=48)
    demo.add_argument("--greedy", action="store_true", help="argmax decoding instead of sampling")
    demo.add_argument("--reward", default=None, help="a reward name, module:attr or a mapping such as '{coherence: 1, ethics: 1}' "
                           "(default: the seed's reward)")
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", help="token-level PPO on Dialogue-v0 (see configs/)")
    train.add_argument("--config", default=None, help="YAML of PPOConfig fields: a path (configs/demo.yaml) or a shipped "
                                                      "preset (demo, gpu, tiny)")
    train.add_argument("--out", default=None, help="run directory (default runs/<config name>)")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out (refused if a --set or "
                                                                "the config changes a field that alters the run)")
    train.add_argument("--set", nargs="*", action="extend", default=[], metavar="FIELD=VALUE",
                       help="override config fields (repeatable: every --set applies)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="one reply per dialogue of a split, scored; JSON summary + JSONL",
                              add_help=False)
    evaluate.set_defaults(func=None, passthrough=_cmd_evaluate)

    compare = sub.add_parser("compare", help="train agents (PPO, SB3 PPO/A2C/DQN, ...) with one budget and compare "
                                             "them on held-out dialogues: tables and plots", add_help=False)
    compare.set_defaults(func=None, passthrough=_cmd_compare)

    data = sub.add_parser("data", help="print counts of a dataset's splits, intents and personas")
    data.add_argument("dataset", nargs="?", default="customer_service")
    data.set_defaults(func=_cmd_data)

    annotate = sub.add_parser("annotate", help="label preference pairs in the browser: 'annotate serve', 'status', "
                                               "'export' (see agents/annotate)")
    from agents.annotate.cli import add_arguments as add_annotate_arguments

    add_annotate_arguments(annotate)
    annotate.set_defaults(func=_cmd_annotate, annotate_parser=annotate)

    reward_model = sub.add_parser("reward-model", help="train a Bradley-Terry reward model on preference pairs: "
                                                       "'reward-model train --out DIR' (the 'learned' reward)",
                                  add_help=False)
    reward_model.set_defaults(func=None, passthrough=_cmd_reward_model)

    bench = sub.add_parser("bench", help="benchmarks: 'bench rewards', 'bench env' or 'bench ppo' (extra flags pass "
                                         "through)")
    bench.add_argument("what", choices=["rewards", "env", "ppo"])
    bench.set_defaults(func=None, bench=True)
    return parser


# The project's exceptions for a user's mistake (a bad config, dataset, model name, reward spec, --policy...): the
# command line prints their message alone. (module, class name): a class whose module was never imported cannot
# have been raised, so nothing is imported to check.
USER_ERRORS = (
    ("rewards.utils", "ConfigError"),  # config files, fields, --set overrides, env arguments
    ("rewards.utils", "BadSpecError"),
    ("rewards.utils", "SpecImportError"),
    ("rewards.registry", "UnknownRewardError"),
    ("agents.evaluate", "PolicyError"),
    ("rewards.jsonl", "DatasetError"),  # dialogue, preference and candidate files
    ("dialogue_env.models", "ModelNotAvailableError"),
    ("rewards.base", "RewardError"),
    ("rewards.learned", "RewardModelError"),
    ("agents.annotate.store", "StoreError"),
)
_USAGE_ERRORS = 5  # the first five: exit status 2, as argparse's usage errors; the others 1
DEBUG_ENV = "DIALOGUE_RL_DEBUG"


def user_error_status(err: BaseException) -> int | None:
    """2 for a usage mistake, 1 for another of the project's user errors, None for anything else (a bug)."""
    for i, (module, name) in enumerate(USER_ERRORS):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(err, cls):
            return 2 if i < _USAGE_ERRORS else 1
    return None


def _debug_from_env() -> bool:
    import os

    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand. A user error (see ``USER_ERRORS``) prints ``dialogue-rl: error: <message>`` on stderr and
    returns 2 or 1; with ``--debug`` (anywhere on the line) or ``DIALOGUE_RL_DEBUG=1`` it is raised with its
    traceback. Any other exception is a bug and always keeps its traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or _debug_from_env()
    argv = [a for a in argv if a != "--debug"]
    try:
        return _run(argv)
    except Exception as err:
        status = user_error_status(err)
        if debug or status is None:
            raise
        print(f"dialogue-rl: error: {err}", file=sys.stderr)
        cause = err.__cause__
        if cause is not None and str(cause) and str(cause) not in str(err):
            print(f"  caused by {type(cause).__name__}: {cause}", file=sys.stderr)
        print(f"  (--debug or {DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
        return status


def _run(argv: list[str]) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(args, "bench", False):
        return _cmd_bench(args, rest)
    if getattr(args, "passthrough", None):
        return args.passthrough(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""Thin entry point: `python scripts/train_reward_model.py ARGS` is `dialogue-rl reward-model train ARGS`."""

import sys

from agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["reward-model", "train", *sys.argv[1:]]))

"""Thin entry point: `python scripts/train.py ARGS` is `dialogue-rl train ARGS`."""

import sys

from agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

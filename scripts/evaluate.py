"""Thin entry point: `python scripts/evaluate.py ARGS` is `dialogue-rl evaluate ARGS`."""

import sys

from agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))

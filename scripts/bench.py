"""Thin entry point: `python scripts/bench.py ARGS` is `dialogue-rl bench ARGS`."""

import sys

from agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))

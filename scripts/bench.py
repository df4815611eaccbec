"""Thin entry point: `python scripts/bench.py ARGS` is `dialogue-rl bench ARGS`."""

import sys

from dialogue_env.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))

"""Thin entry point: `python scripts/compare_agents.py ARGS` is `dialogue-rl compare ARGS`."""

import sys

from agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))

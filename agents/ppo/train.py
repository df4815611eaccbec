"""``python -m agents.ppo.train ARGS`` = ``dialogue-rl train ARGS``: the module ``torchrun -m`` starts on each
process (``torchrun --nproc_per_node 2 -m agents.ppo.train --config configs/tiny.yaml --out DIR``)."""

from __future__ import annotations

import sys

from agents.cli import main


def run(argv: list[str] | None = None) -> int:
    return main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(run())

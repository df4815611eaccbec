"""``python -m agents.compare``: the same as ``dialogue-rl compare``."""

import sys

from .cli import main

sys.exit(main())

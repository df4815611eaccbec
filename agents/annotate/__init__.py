"""Collect human preference labels in the browser: ``dialogue-rl annotate``.

A small local web app shows a dialogue context and two candidate replies, A and B, and records which one a person
prefers: **A**, **B**, **tie**, or **both unsafe**, with an optional note. The labels become the preference JSONL
that :func:`rewards.preferences.load_preferences` reads and a Bradley-Terry reward model trains on.

The workflow::

    dialogue-rl annotate serve --db labels.sqlite --candidates my_candidates.jsonl      # or --model ...
    # label in the browser at http://127.0.0.1:8765/ (keys: 1/A, 2/B, 3/T tie, 4/X both unsafe, N note, U undo)
    dialogue-rl annotate status --db labels.sqlite
    dialogue-rl annotate export --db labels.sqlite --out prefs.jsonl

Where the pairs come from (:mod:`agents.annotate.sources`):

- a **candidates JSONL** (``--candidates``), one context with two or more candidate replies per line (every pair of
  them is shown), or a preference JSONL (``chosen`` / ``rejected``) to relabel;
- a **model** (``--model``): two replies sampled from it for each of ``--pairs`` dialogues of a dataset split, written
  token by token through the environment (the rollout collector ``agents.collect.collect``); ``--against reference`` samples
  the second reply from a training checkpoint's base model, ``--against NAME`` from any other model.

Durability (:mod:`agents.annotate.store`): everything lives in one SQLite file. The pairs are stored when the
server starts, before it answers; each label is one transaction, committed (``synchronous=FULL``) before the page
moves on, so killing the server, even with SIGKILL, loses no label that the page showed as saved. Restart it on the
same file and it continues with the first unlabelled pair.

Export (:mod:`agents.annotate.export`): A or B -> one pair (the preferred reply is ``chosen``). Tie -> no pair
(a tie states no preference; it is counted and skipped). Both unsafe -> two pairs, the context's *reference* reply
(the dataset's reply for model-sampled pairs, or a line's ``reference`` field) chosen over each unsafe reply, when a
reference exists; without one the judgement is skipped and, with ``--unsafe-out FILE``, written there for review.
"""

from .export import ExportSummary, export_preferences, preference_rows
from .sources import CandidateError, CandidatePair, load_candidates, sample_model_pairs
from .store import CHOICES, AnnotationStore, StoreError

__all__ = [
    "CHOICES", "AnnotationStore", "CandidateError", "CandidatePair", "ExportSummary", "StoreError",
    "export_preferences", "load_candidates", "preference_rows", "sample_model_pairs",
]

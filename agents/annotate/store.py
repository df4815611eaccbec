"""The annotation database: one SQLite file holding the pairs to label and the labels given.

Tables::

    meta(key, value)           schema version, the form token (a random secret that every label POST must carry)
    sources(key, description, added_at, n_pairs)      one row per sampling run (so a restart does not sample again)
    pairs(id, key, context, reply_a, reply_b, origin_a, origin_b, reference, source, meta, added_at)
    labels(pair_id, choice, note, annotator, labelled_at, seq)   at most one label per pair

``pairs.key`` is a hash of the context and the *set* of the two replies, so adding the same pair twice (a restart
with the same candidates file, or the two replies in the other order) stores it once. Which reply is shown as A is
fixed when the pair is stored, by a bit of that hash: independent of the order in the source, and stable across
restarts.

Durability: the file is in WAL mode with ``synchronous=FULL``; :meth:`AnnotationStore.record_label` is one
transaction that is committed before it returns, so a label the page reported as saved survives the process being
killed (SIGKILL included). Every call opens its own connection, so the web server's threads never share one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .sources import CandidatePair

CHOICES = ("a", "b", "tie", "both_unsafe")
CHOICE_NAMES = {"a": "A is better", "b": "B is better", "tie": "tie", "both_unsafe": "both unsafe"}
SCHEMA_VERSION = "1"
APP_ID = "dialogue-rl-annotate"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    key TEXT PRIMARY KEY, description TEXT NOT NULL, added_at TEXT NOT NULL, n_pairs INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    context TEXT NOT NULL,          -- JSON list of {"role", "content"}
    reply_a TEXT NOT NULL, reply_b TEXT NOT NULL,
    origin_a TEXT NOT NULL, origin_b TEXT NOT NULL,
    reference TEXT,
    source TEXT NOT NULL,
    meta TEXT NOT NULL,             -- JSON object
    added_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
    pair_id INTEGER PRIMARY KEY REFERENCES pairs(id),
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'both_unsafe')),
    note TEXT NOT NULL DEFAULT '',
    annotator TEXT NOT NULL DEFAULT '',
    labelled_at TEXT NOT NULL,
    seq INTEGER NOT NULL UNIQUE);   -- order of labelling (undo removes the highest)
"""


_SQLITE_INT_MIN, _SQLITE_INT_MAX = -(2 ** 63), 2 ** 63 - 1


def _fits_sqlite(value) -> bool:
    """Whether ``int(value)`` is a 64-bit signed integer, the only kind SQLite binds (larger ones overflow)."""
    try:
        return _SQLITE_INT_MIN <= int(value) <= _SQLITE_INT_MAX
    except (TypeError, ValueError, OverflowError):
        return False


class StoreError(RuntimeError):
    """The database file cannot be used (not SQLite, another application's, or a bad request on it)."""


@dataclass(frozen=True)
class Pair:
    """A stored pair as the annotator sees it (A and B already assigned)."""

    id: int
    context: list
    reply_a: str
    reply_b: str
    origin_a: str
    origin_b: str
    reference: str | None
    source: str
    meta: dict


@dataclass(frozen=True)
class Label:
    pair_id: int
    choice: str
    note: str
    annotator: str
    labelled_at: str
    seq: int


@dataclass(frozen=True)
class Progress:
    labelled: int
    total: int
    counts: dict  # choice -> number of labels

    @property
    def remaining(self) -> int:
        return self.total - self.labelled


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def pair_key(context, replies) -> str:
    """A hash of the context and the unordered pair of replies."""
    blob = json.dumps([list(context), sorted(r.strip() for r in replies)], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnnotationStore:
    """The SQLite file at ``path`` (created if missing). Safe to use from several threads and processes."""

    def __init__(self, path):
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory (pass a database file name, e.g. --db labels.sqlite)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as conn:
                self._check_foreign(conn)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('app', ?)", (APP_ID,))
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('form_token', ?)", (secrets.token_urlsafe(24),))
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path} is not a usable SQLite database ({err}); pass a new file name or a database "
                             f"made by 'dialogue-rl annotate'") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: no implicit transactions; each write below is an explicit BEGIN ... COMMIT.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")  # COMMIT returns only once the label is on disk
            conn.execute("PRAGMA foreign_keys=ON")
            yield conn
        finally:
            conn.close()

    def _check_foreign(self, conn) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return
        app = None
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key='app'").fetchone()
            app = row[0] if row else None
        if app != APP_ID:
            raise StoreError(f"{self.path} is an SQLite database of another application (tables: "
                             f"{', '.join(sorted(tables))}); pass a new file name for the annotations")

    # ----------------------------------------------------------------------------------------------- pairs
    def form_token(self) -> str:
        with self._connect() as conn:
            return conn.execute("SELECT value FROM meta WHERE key='form_token'").fetchone()[0]

    def has_source(self, key: str) -> bool:
        with self._connect() as conn:
            return conn.execute("SELECT 1 FROM sources WHERE key=?", (key,)).fetchone() is not None

    def add_pairs(self, pairs: Iterable[CandidatePair], source_key: str | None = None,
                  description: str = "") -> tuple[int, int]:
        """Store ``pairs`` in one transaction (and, with ``source_key``, record the sampling run). Returns
        ``(added, already_present)``."""
        added = present = 0
        now = _now()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for p in pairs:
                    if len(p.replies) != 2 or p.replies[0].strip() == p.replies[1].strip():
                        raise StoreError(f"pair from {p.source or 'an unknown source'} needs two different replies, "
                                         f"got {p.replies!r}")
                    key = pair_key(p.context, p.replies)
                    swap = int(key[-1], 16) & 1  # which reply is A: a bit of the hash, not the source's order
                    a, b = (1, 0) if swap else (0, 1)
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO pairs (key, context, reply_a, reply_b, origin_a, origin_b, reference, "
                        "source, meta, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (key, json.dumps(list(p.context), ensure_ascii=False), p.replies[a], p.replies[b],
                         p.origins[a], p.origins[b], p.reference, p.source,
                         json.dumps(p.meta, ensure_ascii=False, default=str), now))
                    if cur.rowcount:
                        added += 1
                    else:
                        present += 1
                if source_key is not None:
                    conn.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?)",
                                 (source_key, description or source_key, now, added + present))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return added, present

    @staticmethod
    def _pair(row) -> Pair:
        return Pair(id=row[0], context=json.loads(row[1]), reply_a=row[2], reply_b=row[3], origin_a=row[4],
                    origin_b=row[5], reference=row[6], source=row[7], meta=json.loads(row[8]))

    _PAIR_COLS = "p.id, p.context, p.reply_a, p.reply_b, p.origin_a, p.origin_b, p.reference, p.source, p.meta"

    def next_pair(self) -> Pair | None:
        """The unlabelled pair with the smallest id (the order they were added), or None when all are labelled."""
        with self._connect() as conn:
            row = conn.execute(f"SELECT {self._PAIR_COLS} FROM pairs p LEFT JOIN labels l ON l.pair_id = p.id "
                               "WHERE l.pair_id IS NULL ORDER BY p.id LIMIT 1").fetchone()
        return self._pair(row) if row else None

    def get_pair(self, pair_id: int) -> Pair | None:
        """The pair with that id, or None (also for an id no SQLite integer can hold, such as 2**64)."""
        if not _fits_sqlite(pair_id):
            return None
        with self._connect() as conn:
            row = conn.execute(f"SELECT {self._PAIR_COLS} FROM pairs p WHERE p.id=?", (int(pair_id),)).fetchone()
        return self._pair(row) if row else None

    # ---------------------------------------------------------------------------------------------- labels
    def record_label(self, pair_id: int, choice: str, note: str = "", annotator: str = "") -> bool:
        """Store one label in its own transaction, committed before returning. Returns False (and changes nothing)
        when the pair already has a label, e.g. a second submission of the same page."""
        if choice not in CHOICES:
            raise StoreError(f"choice {choice!r} is not one of {', '.join(CHOICES)}")
        note = (note or "").strip()
        if not _fits_sqlite(pair_id):
            raise StoreError(f"there is no pair {pair_id} in {self.path}")
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM pairs WHERE id=?", (int(pair_id),)).fetchone() is None:
                    raise StoreError(f"there is no pair {pair_id} in {self.path}")
                seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM labels").fetchone()[0]
                cur = conn.execute("INSERT OR IGNORE INTO labels VALUES (?, ?, ?, ?, ?, ?)",
                                   (int(pair_id), choice, note, annotator or "", _now(), seq))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return bool(cur.rowcount)

    def undo_last(self) -> int | None:
        """Delete the most recent label (one transaction); returns its pair id, or None when there is none."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT pair_id FROM labels ORDER BY seq DESC LIMIT 1").fetchone()
                if row:
                    conn.execute("DELETE FROM labels WHERE pair_id=?", (row[0],))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return row[0] if row else None

    def label_of(self, pair_id: int) -> Label | None:
        """The label of that pair, or None (also for an id no SQLite integer can hold)."""
        if not _fits_sqlite(pair_id):
            return None
        with self._connect() as conn:
            row = conn.execute("SELECT pair_id, choice, note, annotator, labelled_at, seq FROM labels WHERE pair_id=?",
                               (int(pair_id),)).fetchone()
        return Label(*row) if row else None

    def labelled(self) -> list[tuple[Pair, Label]]:
        """Every labelled pair with its label, in the order they were labelled."""
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {self._PAIR_COLS}, l.pair_id, l.choice, l.note, l.annotator, l.labelled_at, "
                                "l.seq FROM pairs p JOIN labels l ON l.pair_id = p.id ORDER BY l.seq").fetchall()
        return [(self._pair(r[:9]), Label(*r[9:])) for r in rows]

    def progress(self) -> Progress:
        with self._connect() as conn:
            total = conn.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
            counts = dict(conn.execute("SELECT choice, COUNT(*) FROM labels GROUP BY choice").fetchall())
        return Progress(labelled=sum(counts.values()), total=total, counts={c: counts.get(c, 0) for c in CHOICES})

"""dialogue-rl annotate: candidate files, the SQLite store (durability under SIGKILL), export to preference JSONL,
the Flask app, the CLI and model-sampled pairs. The real-browser test is tests/test_annotate_browser.py."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from agents.annotate import (
    AnnotationStore,
    CandidateError,
    CandidatePair,
    StoreError,
    export_preferences,
    load_candidates,
    sample_model_pairs,
)
from agents.cli import main as cli_main
from dialogue_env.data import load_preferences


def _write_lines(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _pair(i, reference=None):
    return CandidatePair(context=({"role": "user", "content": f"question {i}"},),
                         replies=(f"good answer {i}", f"bad answer {i}"), origins=("good", "bad"),
                         reference=reference, source="test", meta={"i": i})


# ------------------------------------------------------------------------------------------------ candidates
def test_load_candidates_formats(tmp_path):
    path = _write_lines(tmp_path / "cands.jsonl", [
        {"id": "c1", "context": [{"role": "user", "content": "Hi"}], "replies": ["one", "two", "three"]},
        "",
        {"context": "Where is my parcel?", "chosen": "It left today.", "rejected": "No idea.", "reference": "ref"},
    ])
    pairs = load_candidates(path)
    assert len(pairs) == 4  # 3 replies -> 3 pairs, plus one preference line
    assert {p.replies for p in pairs[:3]} == {("one", "two"), ("one", "three"), ("two", "three")}
    assert pairs[0].meta == {"line": 1, "candidate_id": "c1"} and pairs[0].origins == ("replies[0]", "replies[1]")
    last = pairs[3]
    assert last.context == ({"role": "user", "content": "Where is my parcel?"},)
    assert last.origins == ("chosen", "rejected") and last.reference == "ref" and last.meta["line"] == 3
    assert last.source == "candidates:cands.jsonl"


@pytest.mark.parametrize("line, problem, fix", [
    ('{"context": "hi", "replies": ["a", "b"]', "not valid JSON", "each line must be one JSON object"),
    ('{"replies": ["a", "b"]}', "missing 'context'", '"context": "a user message"'),
    ('{"context": [{"role": "customer", "content": "hi"}], "replies": ["a", "b"]}', "unknown role 'customer'",
     "use one of system, user, assistant"),
    ('{"context": "hi"}', "missing 'replies'", '"replies": ["first reply", "second reply"]'),
    ('{"context": "hi", "replies": "a"}', "'replies' must be a list of strings, got str", '"replies": ['),
    ('{"context": "hi", "replies": ["only one"]}', "'replies' holds 1 reply", "at least two candidate replies"),
    ('{"context": "hi", "replies": ["same", " same"]}', "replies[1] repeats replies[0]", "drop the duplicate"),
    ('{"context": "hi", "replies": ["a", ""]}', "replies[1] must be a non-empty string", "needs some text"),
    ('{"context": "hi", "chosen": "a"}', "rejected must be a non-empty string, got None", "needs some text"),
    ('{"context": "hi", "replies": ["a", "b"], "meta": 3}', "'meta' must be an object", ""),
])
def test_bad_candidate_lines_name_file_line_problem_and_fix(tmp_path, line, problem, fix):
    path = _write_lines(tmp_path / "cands.jsonl", [{"context": "fine", "replies": ["x", "y"]}, line])
    with pytest.raises(CandidateError) as info:
        load_candidates(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}, line 2: ") and problem in msg and fix in msg, msg


def test_missing_and_empty_candidate_files(tmp_path):
    with pytest.raises(CandidateError, match="no such file.*--candidates"):
        load_candidates(tmp_path / "nope.jsonl")
    with pytest.raises(CandidateError, match="holds no candidate lines"):
        load_candidates(_write_lines(tmp_path / "empty.jsonl", [""]))


# ----------------------------------------------------------------------------------------------------- store
def test_store_dedups_pairs_and_fixes_sides_by_hash(tmp_path):
    store = AnnotationStore(tmp_path / "db.sqlite")
    pairs = [_pair(i) for i in range(40)]
    assert store.add_pairs(pairs) == (40, 0)
    flipped = [CandidatePair(p.context, p.replies[::-1], p.origins[::-1], source="other") for p in pairs[:10]]
    assert store.add_pairs(flipped) == (0, 10)  # same context and replies in the other order: already there
    sides = [store.get_pair(i + 1).reply_a == f"good answer {i}" for i in range(40)]
    assert 5 < sum(sides) < 35  # A is not always the source's first reply
    for i in range(40):  # and the origins follow their replies
        p = store.get_pair(i + 1)
        assert (p.origin_a == "good") == (p.reply_a == f"good answer {i}")
    with pytest.raises(StoreError, match="two different replies"):
        store.add_pairs([CandidatePair(({"role": "user", "content": "q"},), ("same", "same"))])


def test_store_labels_progress_duplicates_and_undo(tmp_path):
    store = AnnotationStore(tmp_path / "db.sqlite")
    store.add_pairs([_pair(i) for i in range(3)])
    assert store.next_pair().id == 1 and store.progress().remaining == 3
    assert store.record_label(1, "a", note="  clear  ", annotator="ann") is True
    assert store.record_label(1, "b") is False  # a second submission of the same page changes nothing
    assert store.label_of(1).choice == "a" and store.label_of(1).note == "clear"
    assert store.next_pair().id == 2
    store.record_label(3, "both_unsafe")
    progress = store.progress()
    assert (progress.labelled, progress.total, progress.remaining) == (2, 3, 1)
    assert progress.counts == {"a": 1, "b": 0, "tie": 0, "both_unsafe": 1}
    with pytest.raises(StoreError, match="not one of a, b, tie, both_unsafe"):
        store.record_label(2, "maybe")
    with pytest.raises(StoreError, match="no pair 99"):
        store.record_label(99, "a")
    assert store.undo_last() == 3 and store.label_of(3) is None and store.progress().labelled == 1
    assert [label.pair_id for _, label in store.labelled()] == [1]


def test_label_survives_sigkill_right_after_commit(tmp_path):
    """record_label commits before returning: a process killed the instant after still has the label on disk."""
    db = tmp_path / "db.sqlite"
    store = AnnotationStore(db)
    store.add_pairs([_pair(i) for i in range(2)])
    code = textwrap.dedent(f"""
        import os, signal
        from agents.annotate.store import AnnotationStore
        store = AnnotationStore({str(db)!r})
        store.record_label(1, "b", note="killed right after")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    label = AnnotationStore(db).label_of(1)
    assert label is not None and label.choice == "b" and label.note == "killed right after"


def test_store_refuses_files_it_does_not_own(tmp_path):
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="another application.*users.*new file name"):
        AnnotationStore(other)
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some text that is long enough " * 20)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        AnnotationStore(text)
    with pytest.raises(StoreError, match="is a directory"):
        AnnotationStore(tmp_path)


# ---------------------------------------------------------------------------------------------------- export
def test_export_maps_each_judgement(tmp_path):
    store = AnnotationStore(tmp_path / "db.sqlite")
    store.add_pairs([_pair(0), _pair(1), _pair(2), _pair(3, reference="a safe reply 3"), _pair(4)])
    store.record_label(1, "a", note="A is clearer", annotator="ann")
    store.record_label(2, "b")
    store.record_label(3, "tie")
    store.record_label(4, "both_unsafe")
    store.record_label(5, "both_unsafe", note="both rude")
    out, unsafe_out = tmp_path / "out" / "prefs.jsonl", tmp_path / "unsafe.jsonl"
    summary = export_preferences(store, out, unsafe_out=unsafe_out)
    assert (summary.labelled, summary.pairs, summary.from_ab, summary.from_unsafe, summary.ties,
            summary.unsafe_skipped) == (5, 4, 2, 2, 1, 1)
    prefs = load_preferences(out)  # the reward-model trainer's reader accepts the file
    by_id = {p.id: p for p in prefs}
    p1, p2 = store.get_pair(1), store.get_pair(2)
    assert by_id["annot-000001"].chosen == p1.reply_a and by_id["annot-000001"].rejected == p1.reply_b
    assert by_id["annot-000001"].meta["note"] == "A is clearer" and by_id["annot-000001"].meta["annotator"] == "ann"
    assert by_id["annot-000001"].meta["label"] == "a" and by_id["annot-000001"].meta["i"] == 0
    assert by_id["annot-000002"].chosen == p2.reply_b and by_id["annot-000002"].rejected == p2.reply_a
    assert by_id["annot-000002"].context == ({"role": "user", "content": "question 1"},)
    p4 = store.get_pair(4)
    assert by_id["annot-000004-a"].chosen == "a safe reply 3" and by_id["annot-000004-a"].rejected == p4.reply_a
    assert by_id["annot-000004-b"].rejected == p4.reply_b and by_id["annot-000004-b"].meta["origin_chosen"] == "reference"
    assert not any(k.startswith("annot-000003") for k in by_id)  # the tie
    unsafe = [json.loads(line) for line in unsafe_out.read_text().splitlines()]
    assert len(unsafe) == 1 and unsafe[0]["note"] == "both rude" and len(unsafe[0]["unsafe"]) == 2
    assert "2 from A/B choices, 2 from both-unsafe" in summary.describe()


def test_export_with_nothing_exportable_writes_nothing(tmp_path):
    store = AnnotationStore(tmp_path / "db.sqlite")
    store.add_pairs([_pair(0)])
    store.record_label(1, "tie")
    with pytest.raises(ValueError, match="none of its 1 labels gives a preference pair"):
        export_preferences(store, tmp_path / "prefs.jsonl")
    assert not (tmp_path / "prefs.jsonl").exists()


# ------------------------------------------------------------------------------------------------------- app
def test_app_shows_pair_records_label_and_guards_posts(tmp_path):
    from agents.annotate.app import create_app

    store = AnnotationStore(tmp_path / "db.sqlite")
    store.add_pairs([CandidatePair(({"role": "user", "content": "Is <b>this</b> escaped?"},), ("yes & yes", "no"))])
    client = create_app(store, annotator="me").test_client()
    page = client.get("/").get_data(as_text=True)
    assert "Is &lt;b&gt;this&lt;/b&gt; escaped?" in page and "yes &amp; yes" in page
    assert 'data-labelled="0"' in page and 'data-remaining="1"' in page
    token = store.form_token()
    assert client.post("/label", data={"pair_id": 1, "choice": "a"}).status_code == 400  # no token
    assert client.post("/label", data={"pair_id": 1, "choice": "a", "token": "forged"}).status_code == 400
    assert client.post("/label", data={"pair_id": 1, "choice": "best", "token": token}).status_code == 400
    assert client.post("/label", data={"pair_id": 7, "choice": "a", "token": token}).status_code == 400
    assert client.get("/", headers={"Host": "evil.example:8765"}).status_code == 403  # DNS rebinding
    assert store.progress().labelled == 0
    resp = client.post("/label", data={"pair_id": 1, "choice": "tie", "note": "same", "token": token})
    assert resp.status_code == 303 and store.label_of(1).choice == "tie" and store.label_of(1).annotator == "me"
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Saved pair 1: tie" in page and 'data-labelled="1"' in page and "All 1 pairs are labelled" in page
    assert client.get("/api/progress").get_json() == {
        "labelled": 1, "total": 1, "remaining": 0, "counts": {"a": 0, "b": 0, "tie": 1, "both_unsafe": 0}}
    assert client.post("/undo", data={"token": token}).status_code == 303 and store.progress().labelled == 0


@pytest.mark.parametrize("huge", [2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 30])
def test_ids_beyond_64_bits_are_a_clear_client_error_not_a_500(tmp_path, huge):
    from agents.annotate.app import create_app

    store = AnnotationStore(tmp_path / "db.sqlite")
    store.add_pairs([CandidatePair(({"role": "user", "content": "hi"},), ("a reply", "another"))])
    client = create_app(store).test_client()
    resp = client.post("/label", data={"pair_id": str(huge), "choice": "a", "token": store.form_token()})
    assert resp.status_code == 400 and f"pair_id &#39;{huge}&#39; names no pair" in resp.get_data(as_text=True)
    resp = client.get(f"/?saved={huge}")  # the label notice of a pair that cannot exist: the page, without it
    assert resp.status_code == 200 and "Saved pair" not in resp.get_data(as_text=True)
    assert store.get_pair(huge) is None and store.label_of(huge) is None
    with pytest.raises(StoreError, match=f"there is no pair {huge}"):
        store.record_label(huge, "a")
    assert client.get("/no-such-page").status_code == 404 and store.progress().labelled == 0


# ------------------------------------------------------------------------------------------------------- CLI
def test_cli_status_export_and_bad_candidates(tmp_path, capsys):
    db = tmp_path / "db.sqlite"
    store = AnnotationStore(db)
    store.add_pairs([_pair(0), _pair(1)])
    store.record_label(1, "b")
    assert cli_main(["annotate", "status", "--db", str(db)]) == 0
    assert "1 labelled / 1 remaining of 2 pairs" in capsys.readouterr().out
    out = tmp_path / "prefs.jsonl"
    assert cli_main(["annotate", "export", "--db", str(db), "--out", str(out)]) == 0
    assert "1 preference pairs from 1 labels" in capsys.readouterr().out
    assert len(load_preferences(out)) == 1
    bad = _write_lines(tmp_path / "bad.jsonl", [{"context": "hi", "replies": ["a", "b"]}, {"context": "hi"}])
    with pytest.raises(SystemExit, match=r"bad.jsonl, line 2: missing 'replies'"):
        cli_main(["annotate", "serve", "--db", str(db), "--candidates", str(bad), "--port", "0"])
    with pytest.raises(SystemExit, match="--against needs --model"):
        cli_main(["annotate", "serve", "--db", str(db), "--against", "reference"])


# ------------------------------------------------------------------------------------------------ model pairs
def test_sample_model_pairs_tiny_random(tmp_path):
    pairs, skipped = sample_model_pairs("tiny-random", pairs=3, split="validation", seed=1, max_new_tokens=12,
                                        progress=False)
    assert len(pairs) + skipped == 3 and len(pairs) >= 2
    from dialogue_env.data import load_dataset

    by_id = {d.id: d for d in load_dataset("customer_service", "validation")}
    for p in pairs:
        dialogue = by_id[p.meta["dialogue_id"]]
        assert list(p.context) == list(dialogue.turns[: len(p.context)]) and p.context[-1]["role"] == "user"
        assert p.reference and p.replies[0] != p.replies[1]
        assert p.origins == ("tiny-random sample 1", "tiny-random sample 2")
    store = AnnotationStore(tmp_path / "db.sqlite")
    assert store.add_pairs(pairs, source_key="k") == (len(pairs), 0) and store.has_source("k")

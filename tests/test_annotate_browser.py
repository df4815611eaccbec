"""dialogue-rl annotate in a real browser: Debian's chromium driven by Playwright against the real server process.

Labels five pairs by clicking and one with a keyboard shortcut, kills the server with SIGKILL, restarts it on the
same database, and checks that every label is in the database, in the page's progress and in the export.

Needs the apt package ``chromium`` (``.ci/run`` installs it) and the ``playwright`` pip package (the ``dev`` extra;
its own browser download, ``playwright install``, is not used). Without them the test is skipped, except under CI
(the ``CI`` environment variable set), where it fails so that it cannot silently stop running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agents.annotate import AnnotationStore
from dialogue_env.data import load_preferences

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _need(what: str, how: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI must run the browser test: {how}")
    pytest.skip(f"{what} is missing ({how})")


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        _need("chromium", "apt-get install -y --no-install-recommends chromium (done by .ci/run)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("the playwright package", "pip install -e '.[dev]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("dialogue-rl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agents.cli"]


def _start(args, log: Path, port: int) -> subprocess.Popen:
    fh = open(log, "ab")
    proc = subprocess.Popen(_cli() + args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    fh.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/progress", timeout=2) as resp:
                json.load(resp)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the server did not answer within 120 s:\n{log.read_text(errors='replace')}")


def _progress(page) -> tuple[int, int, int]:
    el = page.locator("#progress")
    return tuple(int(el.get_attribute(f"data-{k}")) for k in ("labelled", "remaining", "total"))


def test_label_in_browser_kill_restart_export(browser, tmp_path):
    cands = tmp_path / "candidates.jsonl"
    lines = []
    for i in range(7):
        line = {"id": f"c{i}", "context": [{"role": "user", "content": f"Customer question number {i}?"}],
                "replies": [f"Helpful answer {i}: here is what to do.", f"Unhelpful answer {i}."]}
        if i == 3:
            line["reference"] = "A safe reference reply for question 3."
        lines.append(json.dumps(line))
    cands.write_text("\n".join(lines) + "\n")
    db, log, port = tmp_path / "labels.sqlite", tmp_path / "server.log", _free_port()
    args = ["annotate", "serve", "--db", str(db), "--candidates", str(cands), "--port", str(port),
            "--annotator", "browser-test"]
    url = f"http://127.0.0.1:{port}/"

    server = _start(args, log, port)
    page = browser.new_page()
    try:
        page.goto(url)
        assert _progress(page) == (0, 7, 7)
        expected = {}  # pair id -> (choice, note, reply A shown, reply B shown)
        plan = [("#choose-a", "a", ""), ("#choose-b", "b", "B is more specific"), ("#choose-tie", "tie", ""),
                ("#choose-both-unsafe", "both_unsafe", "both made up a policy"), ("#choose-a", "a", "")]
        for n, (button, choice, note) in enumerate(plan, 1):
            pair_id = int(page.locator("input[name=pair_id]").get_attribute("value"))
            shown = (page.inner_text("#reply-a p"), page.inner_text("#reply-b p"))
            assert f"Customer question number {pair_id - 1}?" in page.inner_text(".context")
            if note:
                page.fill("#note", note)
            page.click(button)
            page.wait_for_selector(f"#status:has-text('Saved pair {pair_id}')")
            assert _progress(page) == (n, 7 - n, 7)
            expected[pair_id] = (choice, note, *shown)
        # The sixth by keyboard: N focuses the note, Esc leaves it, 2 = "B is better".
        pair_id = int(page.locator("input[name=pair_id]").get_attribute("value"))
        shown = (page.inner_text("#reply-a p"), page.inner_text("#reply-b p"))
        page.keyboard.press("n")
        page.keyboard.type("typed via keys")
        page.keyboard.press("Escape")
        page.keyboard.press("2")
        page.wait_for_selector(f"#status:has-text('Saved pair {pair_id}')")
        assert page.input_value("#note") == ""  # the next pair's form: the note field starts empty
        expected[pair_id] = ("b", "typed via keys", *shown)
        assert _progress(page) == (6, 1, 7)

        server.send_signal(signal.SIGKILL)  # no shutdown handler runs
        assert server.wait(timeout=30) == -signal.SIGKILL

        # The labels are on disk, read by a fresh connection while no server runs.
        store = AnnotationStore(db)
        got = {label.pair_id: (label.choice, label.note) for _, label in store.labelled()}
        assert got == {pid: (c, note) for pid, (c, note, _, _) in expected.items()}

        server = _start(args, log, port)  # same database, same candidates file: nothing is added twice
        assert "0 new pairs, 7 already in" in log.read_text()
        page.reload()
        assert _progress(page) == (6, 1, 7)
        assert "6 labelled / 1 remaining" in page.inner_text("#progress-text")
        page.keyboard.press("t")  # the last pair: tie
        page.wait_for_selector("#done")
        assert _progress(page) == (7, 0, 7)
    finally:
        page.close()
        if server.poll() is None:
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)

    out = tmp_path / "prefs.jsonl"
    proc = subprocess.run(_cli() + ["annotate", "export", "--db", str(db), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    prefs = {p.id: p for p in load_preferences(out)}
    # A/B choices (pairs 1, 2, 5, 6): 4 rows; both unsafe with a reference (pair 4): 2 rows; ties (3, 7): none.
    assert len(prefs) == 6, sorted(prefs)
    for pid, (choice, note, a, b) in expected.items():
        if choice in ("a", "b"):
            p = prefs[f"annot-{pid:06d}"]
            assert (p.chosen, p.rejected) == ((a, b) if choice == "a" else (b, a))
            assert p.meta["annotator"] == "browser-test" and p.meta.get("note", "") == note
        elif choice == "both_unsafe":
            rows = [prefs[f"annot-{pid:06d}-a"], prefs[f"annot-{pid:06d}-b"]]
            assert {r.rejected for r in rows} == {a, b}
            assert all(r.chosen == "A safe reference reply for question 3." for r in rows)

"""The labelling web app (Flask): one page that shows the next unlabelled pair and a form that stores a label.

Routes:

- ``GET /``: the first unlabelled pair (context, reply A, reply B), the label form and the progress (labelled /
  remaining). Works without JavaScript; ``static/annotate.js`` adds the keyboard shortcuts.
- ``POST /label`` (form: ``pair_id``, ``choice`` in a / b / tie / both_unsafe, ``note``, ``token``): stores the label,
  committed before the reply, then redirects to ``/`` (post/redirect/get, so a reload never labels twice). A second
  submission for a pair that already has a label changes nothing.
- ``POST /undo`` (form: ``token``): deletes the most recent label; that pair is shown again.
- ``GET /api/progress``: ``{"labelled", "total", "remaining", "counts"}`` as JSON.

The form token is a random secret stored in the database: it stops another web site open in the same browser from
posting labels to this server (cross-site request forgery), and it survives restarts, so a page left open while
the server was restarted still works. When bound to a loopback address the app also answers only requests whose
``Host`` is a loopback name (no DNS rebinding).
"""

from __future__ import annotations

import hmac
from pathlib import Path

from flask import Flask, abort, jsonify, redirect, render_template, request, url_for

from .store import CHOICE_NAMES, CHOICES, AnnotationStore

PACKAGE_DIR = Path(__file__).resolve().parent
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_NOTE_CHARS = 2000


def _hostname(host: str) -> str:
    """``"127.0.0.1:8765"`` -> ``"127.0.0.1"``; ``"[::1]:8765"`` -> ``"[::1]"``."""
    if host.startswith("["):
        return host[: host.index("]") + 1] if "]" in host else host
    return host.split(":", 1)[0]


def _print(line: str) -> None:
    print(line, flush=True)


def create_app(db, annotator: str = "", loopback_only: bool = True) -> Flask:
    """The Flask app for the annotation database ``db`` (a path or an :class:`AnnotationStore`)."""
    store = db if isinstance(db, AnnotationStore) else AnnotationStore(db)
    app = Flask(__name__, template_folder=str(PACKAGE_DIR / "templates"), static_folder=str(PACKAGE_DIR / "static"))
    app.config["STORE"] = store
    token = store.form_token()

    @app.before_request
    def _check_host():
        if loopback_only:
            host = _hostname(request.host)
            if host not in LOOPBACK_HOSTS:
                abort(403, description=f"this annotation server answers only on loopback addresses, not {host!r}")

    def _check_token():
        if not hmac.compare_digest(request.form.get("token", ""), token):
            abort(400, description="the form token is missing or wrong: reload the page")

    @app.get("/")
    def index():
        pair = store.next_pair()
        progress = store.progress()
        saved_id = request.args.get("saved", type=int)
        saved = store.label_of(saved_id) if saved_id else None
        return render_template("index.html", pair=pair, progress=progress, token=token, choices=CHOICE_NAMES,
                               saved=saved, undone=request.args.get("undone", type=int),
                               max_note=MAX_NOTE_CHARS, db=str(store.path))

    @app.post("/label")
    def label():
        _check_token()
        choice = request.form.get("choice", "")
        if choice not in CHOICES:
            abort(400, description=f"choice {choice!r} is not one of {', '.join(CHOICES)}")
        pair_id = request.form.get("pair_id", type=int)
        if pair_id is None or store.get_pair(pair_id) is None:
            abort(400, description=f"pair_id {request.form.get('pair_id')!r} names no pair in {store.path}")
        note = request.form.get("note", "")[:MAX_NOTE_CHARS]
        store.record_label(pair_id, choice, note=note, annotator=annotator)  # committed before we answer
        return redirect(url_for("index", saved=pair_id), code=303)

    @app.post("/undo")
    def undo():
        _check_token()
        pair_id = store.undo_last()
        return redirect(url_for("index", undone=pair_id) if pair_id else url_for("index"), code=303)

    @app.get("/api/progress")
    def progress():
        p = store.progress()
        return jsonify(labelled=p.labelled, total=p.total, remaining=p.remaining, counts=p.counts)

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    def _error(err):
        return render_template("error.html", message=err.description), err.code

    return app


def serve(db, host: str = "127.0.0.1", port: int = 8765, annotator: str = "", out=_print) -> None:
    """Serve the app on ``host:port`` until interrupted (``port=0`` picks a free port; the URL is printed)."""
    from werkzeug.serving import make_server

    loopback = host in LOOPBACK_HOSTS
    app = create_app(db, annotator=annotator, loopback_only=loopback)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as err:
        raise SystemExit(f"cannot listen on {host}:{port} ({err.strerror or err}); pick another port with --port "
                         f"(0 = any free port)") from None
    if not loopback:
        out(f"[dialogue-rl] warning: listening on {host}, so anyone who can reach this machine can read the pairs "
            f"and add labels (there is no login); the default, 127.0.0.1, keeps it local")
    store = app.config["STORE"]
    p = store.progress()
    shown = "[::1]" if host == "::1" else host
    out(f"[dialogue-rl] annotate: {p.labelled} labelled, {p.remaining} remaining in {store.path}")
    out(f"[dialogue-rl] open http://{shown}:{server.port}/ (Ctrl+C stops; every label is saved as it is given)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    p = store.progress()
    out(f"[dialogue-rl] stopped: {p.labelled} labelled, {p.remaining} remaining; export with "
        f"'dialogue-rl annotate export --db {store.path} --out prefs.jsonl'")

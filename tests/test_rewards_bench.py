"""The reward benchmark's command line runs and reports a table (tiny batches; the real numbers are in the README)."""

from __future__ import annotations

import json

import pytest

from rewards import bench


def test_build_batch_has_distinct_replies_and_cycled_contexts():
    ctx, replies, refs = bench.build_batch(1024)
    assert len(ctx) == len(replies) == len(refs) == 1024
    assert len(set(replies)) == 1024
    assert len({id(c) for c in ctx}) == len(bench.CONTEXTS) == 30
    assert sum(r is None for r in refs) == 256


def test_bench_main_prints_a_markdown_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench.main(["--batch-sizes", "1,4", "--device", "cpu", "--only", "length,repetition",
                     "--min-time", "0", "--quiet", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| scorer | device | batch 1 | batch 4 |" in text
    for row in ("| length | cpu |", "| repetition | cpu |", "| MiniLM alone (embeddings/s) | cpu |"):
        assert row in text
    data = json.loads(out.read_text())
    cells = {(r["scorer"], r["batch"]) for r in data["results"]}
    assert cells == {("length", 1), ("length", 4), ("repetition", 1), ("repetition", 4)}
    assert all(r["responses_per_s"] > 0 for r in data["results"])
    assert [m["batch"] for m in data["minilm"]] == [1, 4]


def test_bench_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        bench.main(["--batch-sizes", "a,b"])
    with pytest.raises(SystemExit):
        bench.main(["--batch-sizes", "0"])

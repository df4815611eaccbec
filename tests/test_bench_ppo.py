"""`dialogue-rl bench ppo` at tiny size on the CPU: every row is produced, the table and JSON are written (no timing
is asserted: speed is measured by the benchmark itself, never by tests)."""

import json

import pytest

from agents.cli import main


@pytest.mark.usefixtures("one_thread")
def test_bench_ppo_runs_ours_hf_generate_and_trl_at_tiny_size(tmp_path, capsys):
    pytest.importorskip("trl")
    out = tmp_path / "bench.json"
    assert main(["bench", "ppo", "--device", "cpu", "--num-envs", "4", "--samples", "2", "--max-new-tokens", "4",
                 "--iterations", "1", "--warmup", "1", "--decode", "dynamic,static", "--strict", "--out",
                 str(out)]) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    names = [r["name"] for r in result["rows"]]
    assert names == ["ours (dynamic)", "ours (static)", "HF generate", "TRL GRPOTrainer"]
    for name in names:
        assert f"| {name} |" in table
    ours = result["rows"][0]
    assert set(ours["phases"]) == {"generate", "reward", "score", "update", "other"}
    assert all(v >= 0 for v in ours["phases"].values()) and ours["rollout_tokens_per_s"] > 0
    assert ours["tokens"] > 0 and ours["peak_gib"] is None  # no GPU memory on the CPU
    assert set(result["ratios"]) == {"ours/TRL step time", "ours/HF rollout tokens per s"}
    assert result["environment"]["device"] == "cpu"


@pytest.mark.usefixtures("one_thread")
def test_bench_ppo_gives_one_row_per_precision_with_the_top_layers_trained(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "ppo", "--device", "cpu", "--num-envs", "4", "--samples", "2", "--max-new-tokens", "4",
                 "--iterations", "1", "--warmup", "1", "--dtype", "auto,autocast", "--layers", "1", "--no-trl",
                 "--no-generate", "--reward", "{length: 1.0, unfinished: 0.5}", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert [r["name"] for r in result["rows"]] == ["ours (auto)", "ours (auto, autocast)"]
    assert "| ours (auto, autocast) |" in table and "trainable layers=1;" in table
    assert result["args"]["reward"] == {"length": 1.0, "unfinished": 0.5}
    assert all(r["rollout_tokens_per_s"] > 0 for r in result["rows"])


def test_bench_ppo_rejects_a_batch_that_is_not_made_of_groups(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "ppo", "--num-envs", "5", "--samples", "2"])
    assert "multiple of --samples" in capsys.readouterr().err


def test_trl_gets_the_envs_reward_the_default_one_included():
    import rewards
    from agents.bench import trl_reward

    assert trl_reward("length").composite.components[0].name == "length"
    names = sorted(c.name for c in trl_reward(None).composite.components)
    assert len(names) > 1 and names == sorted(c.name for c in rewards.make_composite(rewards.DEFAULT_SPEC).components)

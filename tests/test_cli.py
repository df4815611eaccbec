"""The dialogue-rl command line: help, the demo on the tiny model, dataset stats, the env benchmark."""

import subprocess
import sys

from agents.cli import main


def test_help_lists_the_subcommands():
    out = subprocess.run([sys.executable, "-m", "agents.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for sub in ("demo", "data", "bench"):
        assert sub in out


def test_demo_plays_episodes_with_the_tiny_model(capsys):
    assert main(["demo", "--model", "tiny-random", "--episodes", "2", "--max-new-tokens", "6", "--reward",
                 "length"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== episode") == 2 and "reward" in out and "mean episode return over 2 episodes" in out


def test_data_prints_split_counts(capsys):
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert "| train | 450 |" in out and "| billing | 45 | 10 | 10 |" in out


def test_bench_env_prints_a_ratio_table(capsys, tmp_path):
    assert main(["bench", "env", "--num-envs", "1,4", "--steps", "4", "--out", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "| 4 |" in out and "x |" in out
    assert (tmp_path / "b.json").is_file()

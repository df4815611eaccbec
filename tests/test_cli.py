"""The dialogue-rl command line: help, the demo on the tiny model, dataset stats, the env benchmark."""

import os
import subprocess
import sys

import pytest

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


# ------------------------------------------------------------------------------- user errors: message, no traceback
def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_bad_config_value_prints_the_message_alone_with_status_2(capsys, tmp_path):
    assert main(["train", "--config", "tiny", "--set", "total_iterations=-1", "--out", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert err.startswith("dialogue-rl: error: total_iterations=-1 must be an integer >= 1") and "--debug" in err
    # every --set applies: a second --set must not drop the first (argparse's default for nargs="*" would)
    assert main(["train", "--config", "tiny", "--set", "total_iterations=-1", "--set", "seed=3",
                 "--out", str(tmp_path / "r")]) == 2
    assert "total_iterations=-1 must be an integer >= 1" in _err(capsys)
    assert main(["train", "--set", "lr"]) == 2
    assert "override 'lr' must look like field=value" in _err(capsys)
    assert not (tmp_path / "r").exists()


def test_bad_dataset_and_missing_model_print_the_message_alone_with_status_1(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "a", "turns": [{"role": "user", "content": "caf\xe9"}]}\n')
    assert main(["data", str(bad)]) == 1
    assert "bad.jsonl, line 1: not UTF-8" in _err(capsys)
    (tmp_path / "empty").mkdir()
    assert main(["demo", "--model", str(tmp_path / "empty"), "--episodes", "1"]) == 1
    assert "is an empty directory" in _err(capsys)


def test_passthrough_subcommands_print_user_errors_alone(capsys, tmp_path):
    bad = tmp_path / "d.jsonl"
    bad.write_text('{"id": "a", "turns": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}]}\n')
    assert main(["evaluate", "--policy", "tiny-random", "--dataset", str(bad), "--reward", "length",
                 "--out", str(tmp_path / "e.json"), "--no-progress"]) == 1
    assert "d.jsonl, line 1: turns[0] is an assistant message" in _err(capsys)
    assert main(["evaluate", "--policy", "tiny-random", "--reward", "no_such_reward", "--limit", "1",
                 "--out", str(tmp_path / "e.json"), "--no-progress"]) == 2
    assert "no_such_reward" in _err(capsys)


def test_debug_flag_and_env_var_keep_the_traceback(monkeypatch, tmp_path):
    from rewards.utils import ConfigError

    with pytest.raises(ConfigError, match="total_iterations=-1"):
        main(["--debug", "train", "--set", "total_iterations=-1"])
    with pytest.raises(ConfigError, match="total_iterations=-1"):
        main(["train", "--set", "total_iterations=-1", "--debug"])
    monkeypatch.setenv("DIALOGUE_RL_DEBUG", "1")
    with pytest.raises(ConfigError):
        main(["train", "--set", "total_iterations=-1"])


def test_unexpected_exceptions_keep_their_traceback(monkeypatch):
    import dialogue_env.data.stats as stats

    def broken(dataset):
        raise ZeroDivisionError("a real bug")

    monkeypatch.setattr(stats, "print_stats", broken)
    with pytest.raises(ZeroDivisionError, match="a real bug"):
        main(["data"])
    monkeypatch.setattr(stats, "print_stats", lambda dataset: {}["missing"])
    with pytest.raises(KeyError):  # a KeyError that is not an UnknownRewardError is a bug too
        main(["data"])


def test_the_installed_command_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "agents.cli", "train", "--set", "gamma=2"], capture_output=True,
                          text=True, env={**os.environ, "DIALOGUE_RL_DEBUG": ""})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("dialogue-rl: error: gamma=2 must be in [0, 1]")
    proc = subprocess.run([sys.executable, "-m", "agents.cli", "--debug", "train", "--set", "gamma=2"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ConfigError: gamma=2" in proc.stderr


def _run(capsys, argv) -> tuple[int, str]:
    """(exit status, what the user reads on stderr) of one command, in process."""
    try:
        status, said = main(argv), ""
    except SystemExit as exit_:
        status, said = (exit_.code, "") if isinstance(exit_.code, int) else (1, str(exit_.code))
    return status, _err(capsys) + said


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--policy", "tiny-random", "--limit", "0", "--out", "{tmp}/e.json"],
     "argument --limit: 0 is not a positive integer"),
    (["evaluate", "--policy", "tiny-random", "--batch-size", "0", "--out", "{tmp}/e.json"],
     "argument --batch-size: 0 is not a positive integer"),
    (["evaluate", "--policy", "tiny-random", "--temperature", "0", "--out", "{tmp}/e.json"],
     "argument --temperature: 0 must be above 0; for argmax decoding use --greedy"),
    (["evaluate", "--policy", "tiny-random", "--out", "{tmp}/e.jsonl"], "ends in .jsonl: give the summary's .json"),
    (["evaluate", "--policy", "tiny-random", "--out", "{tmp}/a_file/e.json"], "a_file is a file, not a folder"),
    (["evaluate", "--policy", "tiny-random", "--reward", "{bad", "--out", "{tmp}/e.json"],
     "--reward '{bad' does not parse as YAML or JSON"),
    (["evaluate", "--policy", "tiny-random", "--judge", "{learned: [", "--out", "{tmp}/e.json"],
     "--judge '{learned: [' does not parse as YAML or JSON"),
    (["train", "--config", "tiny", "--set", "reward={bad", "--out", "{tmp}/r"],
     "--set reward= '{bad' does not parse as YAML or JSON"),
    (["train", "--config", "tiny", "--set", "judges=5", "--out", "{tmp}/r"], "judges=5: give a list of reward specs"),
    (["train", "--config", "tiny", "--set", "system_prompt=5", "--out", "{tmp}/r"], "system_prompt=5 must be a string"),
    (["train", "--config", "tiny", "--set", "reward={coherence: x}", "--out", "{tmp}/r"],
     "the weight of 'coherence' must be a finite number, got 'x'"),
    (["evaluate", "--policy", "tiny-random", "--reward", "{length: {bogus: 2}}", "--out", "{tmp}/e.json"],
     "reward 'length': constructing LengthPenalty with ['bogus'] failed"),
    (["train", "--config", "tiny", "--out", "{tmp}/a_file"], "is a file: name a folder for the run"),
    (["compare", "--agents", "nope", "--out", "{tmp}/c"], "unknown agent 'nope': use a built-in"),
    (["compare", "--agents", "random", "--out", "{tmp}/a_file"], "is a file: give the folder"),
    (["compare", "--agents", "random", "--reward", "{a: [", "--out", "{tmp}/c"], "--reward '{a: [' does not parse"),
    (["demo", "--model", "tiny-random", "--reward", "{length: [", "--episodes", "1"], "--reward '{length: [' does not"),
    (["demo", "--model", "tiny-random", "--episodes", "0"], "argument --episodes: 0 is not a positive integer"),
    (["bench", "env", "--num-envs", "0"], "argument --num-envs: '0': give comma-separated positive batch sizes"),
    (["bench", "ppo", "--num-envs", "0"], "argument --num-envs: 0 is not a positive integer"),
    (["reward-model", "train", "--epochs", "0", "--out", "{tmp}/rm"], "argument --epochs: 0 is not a positive integer"),
    (["reward-model", "train", "--test-fraction", "0.3", "--out", "{tmp}/rm"],
     "--test-fraction 0.3 would not be used: the test pairs are customer_service:test"),
    (["annotate", "serve", "--port", "99999", "--db", "{tmp}/a.db"], "argument --port: 99999 is not a port"),
    # a device this process cannot use (no CUDA here; past the GPUs on a GPU machine): not torch's assertion
    (["train", "--config", "tiny", "--set", "device=cuda:99", "--out", "{tmp}/r"], "device='cuda:99', but"),
    (["evaluate", "--policy", "tiny-random", "--device", "cuda:99", "--out", "{tmp}/e.json"], "device='cuda:99', but"),
    (["compare", "--agents", "random", "--device", "cuda:99", "--out", "{tmp}/c"], "device='cuda:99', but"),
    (["bench", "ppo", "--device", "cuda:99", "--no-trl"], "device='cuda:99', but"),
    (["train", "--config", "tiny", "--set", "device=gpu", "--out", "{tmp}/r"], "device='gpu' is not a device torch"),
    (["bench", "ppo", "--decode", "auto,bogus", "--no-trl"], "decode='bogus': use auto, static or dynamic"),
    (["bench", "ppo", "--layers", "0", "--no-trl"], "num_layers_unfrozen=0 must be in"),
    (["compare", "--agents", "random", "--model", "tiny-random", "--k", "100000", "--out", "{tmp}/c"],
     "k=100000 must be in 1..259"),
    (["annotate", "status", "--db", "{tmp}/typo.db"], "no annotation database at {tmp}/typo.db"),
    (["annotate", "export", "--db", "{tmp}/typo.db", "--out", "{tmp}/p.jsonl"], "no annotation database at"),
])
def test_bad_arguments_are_one_message_before_any_work_and_write_nothing(capsys, tmp_path, argv, message):
    (tmp_path / "a_file").write_text("keep")
    status, err = _run(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert status != 0 and message.replace("{tmp}", str(tmp_path)) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no file, folder or database was created
    assert (tmp_path / "a_file").read_text() == "keep"

"""PPO checkpoints: code-free state files, refusing old pickles and changed configs, damaged and stale checkpoints."""

import json
import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.cli import main
from agents.ppo.checkpoint import (
    LEGACY_STATE,
    STATE_JSON,
    STATE_TENSORS,
    ResumeError,
    latest_checkpoint,
    read_checkpoint,
    read_trainer_state,
    remove_stale_temporaries,
    write_trainer_state,
)
from agents.ppo.config import RESUME_CHANGEABLE, PPOConfig
from agents.ppo.trainer import train

SETTINGS = dict(model="tiny-random", reward="length", max_new_tokens=6, max_context_tokens=64, num_envs=4,
                num_minibatches=2, update_epochs=1, total_iterations=2, learning_rate=1e-3, temperature=1.0,
                num_layers_unfrozen=1, final_split=None, checkpoint_every=1, logger="none")


def _cfg(**kw):
    return PPOConfig(**{**SETTINGS, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """A run of two iterations: checkpoints iter-000001 and iter-000002. Tests work on copies."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    train(_cfg(), out, progress_bar=False, log=lambda *a: None)
    return out


@pytest.fixture
def run(trained, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    return out


class _Exploit:
    """Unpickling this creates the directory ``marker``: proof that the pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_trainer_state_round_trips_exactly_through_json_and_safetensors(tmp_path):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.randn(3))], lr=1e-3)
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    np.random.seed(3)
    np.random.standard_normal()  # a cached gaussian in the legacy state
    state = {"iteration": 7, "optimizer": opt.state_dict(), "numpy_rng": np.random.get_state(),
             "python_rng": random.getstate(), "torch_rng": torch.get_rng_state(),
             "sampler": {"rng": np.random.default_rng(0).bit_generator.state, "queue": [[1, 2], [3]]},
             "bf16": torch.randn(2, 2).to(torch.bfloat16), "__odd": {1: "int key"}, "nan": float("nan")}
    write_trainer_state(tmp_path, state)
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_JSON, STATE_TENSORS]
    back = read_trainer_state(tmp_path)
    assert back["optimizer"]["state"][0]["step"] == state["optimizer"]["state"][0]["step"]
    torch.testing.assert_close(back["optimizer"]["state"][0]["exp_avg_sq"], state["optimizer"]["state"][0]["exp_avg_sq"],
                               rtol=0, atol=0)
    assert back["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]  # betas stay a tuple
    legacy, restored = state["numpy_rng"], back["numpy_rng"]
    assert restored[0] == legacy[0] and np.array_equal(restored[1], legacy[1]) and restored[1].dtype == np.uint32
    assert restored[2:] == legacy[2:]
    np.random.set_state(restored)
    random.setstate(back["python_rng"])
    assert back["sampler"] == state["sampler"] and back["__odd"] == {1: "int key"} and np.isnan(back["nan"])
    assert torch.equal(back["torch_rng"], state["torch_rng"]) and torch.equal(back["bf16"], state["bf16"])
    with pytest.raises(TypeError, match="cannot store a object"):
        write_trainer_state(tmp_path, {"x": object()})


def test_a_pickle_in_the_checkpoint_is_never_unpickled(run, tmp_path):
    marker = tmp_path / "pwned"
    newest = latest_checkpoint(run)
    # 1. planted where the old state file lived, beside a current checkpoint: ignored
    (newest / LEGACY_STATE).write_bytes(pickle.dumps(_Exploit(marker)))
    result = train(_cfg(total_iterations=3), run, resume=True, progress_bar=False, log=lambda *a: None)
    assert result["progress"]["iteration"] == 3 and not marker.exists()
    # 2. a pickle in place of the JSON state and of the tensors: damaged files, the previous checkpoint is used
    newest = latest_checkpoint(run)
    (newest / STATE_JSON).write_bytes(pickle.dumps(_Exploit(marker)))
    logs = []
    result = train(_cfg(total_iterations=3), run, resume=True, progress_bar=False, log=logs.append)
    assert result["progress"]["iteration"] == 3 and len(result["history"]) == 1 and not marker.exists()
    assert any(f"{newest} is damaged" in line for line in logs)
    (latest_checkpoint(run) / STATE_TENSORS).write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(ValueError):
        read_checkpoint(latest_checkpoint(run))
    assert not marker.exists()


def test_an_old_pickle_format_checkpoint_is_refused_not_loaded(run, tmp_path):
    marker = tmp_path / "pwned"
    for ckpt in (run / "checkpoints").glob("iter-*"):  # an old-format run: trainer_state.pt only
        (ckpt / STATE_JSON).unlink()
        (ckpt / STATE_TENSORS).unlink()
        (ckpt / LEGACY_STATE).write_bytes(pickle.dumps(_Exploit(marker)))
    config_before = (run / "config.json").read_text()
    with pytest.raises(ResumeError) as err:
        train(_cfg(total_iterations=3), run, resume=True, progress_bar=False, log=lambda *a: None)
    message = str(err.value)
    assert str(latest_checkpoint(run) / LEGACY_STATE) in message
    assert "pickle" in message and "run arbitrary code" in message and "Retrain" in message
    assert "only if you trust" in message
    assert not marker.exists() and (run / "config.json").read_text() == config_before


def test_resume_refuses_fields_that_change_the_run_and_lists_them(run):
    config_before = (run / "config.json").read_text()
    with pytest.raises(ResumeError) as err:
        train(_cfg(total_iterations=3, reward="sentiment", num_layers_unfrozen=2, num_envs=8, eval_every=1), run,
              resume=True, progress_bar=False, log=lambda *a: None)
    message = str(err.value)
    assert "  reward: 'length' -> 'sentiment'" in message
    assert "  num_layers_unfrozen: 1 -> 2" in message and "  num_envs: 4 -> 8" in message
    assert "total_iterations:" not in message and "eval_every:" not in message  # allowed changes are not listed
    assert str(latest_checkpoint(run)) in message
    assert (run / "config.json").read_text() == config_before  # the refused config was not written
    # the command line says it in one message, no traceback
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", str(run), "--resume", "--no-progress", "--set",
              *(f"{k}={json.dumps(v)}" for k, v in SETTINGS.items()), "reward=sentiment"])
    assert str(exit_.value).startswith("dialogue-rl train: --resume:") and "reward: 'length' -> 'sentiment'" in str(
        exit_.value)
    assert (run / "config.json").read_text() == config_before


def _tree(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_training_into_an_existing_run_without_resume_is_refused_and_touches_nothing(run, tmp_path):
    before = _tree(run)
    with pytest.raises(ResumeError, match=r"already holds a run \(checkpoints up to iter-000002\): pass --resume"):
        train(_cfg(total_iterations=1), run, progress_bar=False, log=lambda *a: None)
    assert _tree(run) == before  # iter-000001 was not replaced, nothing mixed into the old run
    with pytest.raises(SystemExit) as exit_:  # the command line: one message, before any model is loaded
        main(["train", "--out", str(run), "--no-progress", "--set",
              *(f"{k}={json.dumps(v)}" for k, v in SETTINGS.items())])
    assert str(exit_.value).startswith(f"dialogue-rl train: --out {run} already holds a run")
    assert _tree(run) == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(ResumeError, match=r"already holds files \(todo.txt\)"):
        train(_cfg(total_iterations=1), other, progress_bar=False, log=lambda *a: None)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ResumeError, match="is a file: name a folder"):
        train(_cfg(total_iterations=1), tmp_path / "a_file", resume=True, progress_bar=False, log=lambda *a: None)
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is a fine place for a new run
    assert train(_cfg(total_iterations=1), empty, progress_bar=False, log=lambda *a: None)["progress"]["iteration"] == 1


def test_resume_accepts_harmless_changes_and_continues_from_the_saved_iteration(run):
    logs = []
    result = train(_cfg(total_iterations=3, checkpoint_every=3, eval_every=5, eval_batch_size=2, logger="tensorboard",
                        examples=1, time_limit_s=3600.0, extra={"note": "resumed"}, judges=["repetition"]), run,
                   resume=True,
                   progress_bar=False, log=logs.append)
    assert result["progress"]["iteration"] == 3 and len(result["history"]) == 1
    assert any("resumed from" in line and "iter-000002" in line for line in logs)
    assert any("total_iterations: 2 -> 3" in line and "logger: 'none' -> 'tensorboard'" in line for line in logs)
    assert json.loads((run / "config.json").read_text())["total_iterations"] == 3
    assert json.loads((run / "config.json").read_text())["judges"] == ["repetition"]  # judges never touch training
    assert {"total_iterations", "time_limit_s", "logger", "checkpoint_every"} <= RESUME_CHANGEABLE
    assert RESUME_CHANGEABLE <= set(PPOConfig().to_dict())  # every allowed name is a field


@pytest.mark.parametrize("damage", ["truncated_json", "missing_state", "truncated_tensors", "missing_weights",
                                    "truncated_weights", "foreign_state"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(run, damage):
    newest = run / "checkpoints" / "iter-000002"
    if damage == "truncated_json":
        text = (newest / "dialogue_rl.json").read_text()
        (newest / "dialogue_rl.json").write_text(text[: len(text) // 2])
    elif damage == "missing_state":
        (newest / STATE_JSON).unlink()
    elif damage == "foreign_state":  # well-formed JSON of the right format, but not a trainer state
        (newest / STATE_JSON).write_text(json.dumps({"format": "dialogue-rl-ppo-checkpoint", "version": 2, "state": []}))
    elif damage == "missing_weights":
        (newest / "model.safetensors").unlink()
    else:
        name = STATE_TENSORS if damage == "truncated_tensors" else "model.safetensors"
        data = (newest / name).read_bytes()
        (newest / name).write_bytes(data[: len(data) - 100])
    logs = []
    result = train(_cfg(total_iterations=3), run, resume=True, progress_bar=False, log=logs.append)
    assert any(f"checkpoint {newest} is damaged" in line for line in logs), logs
    assert any("using" in line and "iter-000001" in line for line in logs)
    assert result["progress"]["iteration"] == 3 and len(result["history"]) == 2  # iterations 2 and 3 ran again
    read_checkpoint(newest)  # rewritten whole by the resumed run
    assert latest_checkpoint(run).name == "iter-000003"


def test_only_damaged_checkpoints_is_an_error_not_a_fresh_start(run):
    for ckpt in (run / "checkpoints").glob("iter-*"):
        (ckpt / STATE_TENSORS).write_bytes(b"garbage")
    with pytest.raises(ResumeError, match="every checkpoint under .* is damaged"):
        train(_cfg(total_iterations=3), run, resume=True, progress_bar=False, log=lambda *a: None)


def test_stale_temporary_checkpoint_folders_are_removed_at_start(run):
    root = run / "checkpoints"
    stale = [root / ".iter-000003.tmp-0123abcd", root / ".iter-000004.tmp-456789ab"]
    for path in stale:
        path.mkdir()
        (path / "model.safetensors").write_bytes(b"half")
    (root / ".iter-000001.old-89abcdef").mkdir()  # iter-000001 exists: the moved-aside copy is stale
    os.replace(root / "iter-000002", root / ".iter-000002.old-deadbeef")  # killed between the two renames
    (root / "keep.txt").write_text("not ours")
    logs = []
    remove_stale_temporaries(run, logs.append)
    assert sorted(p.name for p in root.iterdir()) == ["iter-000001", "iter-000002", "keep.txt"]
    read_checkpoint(root / "iter-000002")  # put back whole
    assert sum("removed" in line for line in logs) == 3 and any("restored" in line for line in logs)
    # train does it at start, resume or not
    (root / ".iter-000003.tmp-0123abcd").mkdir()
    result = train(_cfg(total_iterations=3), run, resume=True, progress_bar=False, log=lambda *a: None)
    assert result["progress"]["iteration"] == 3
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_latest_checkpoint_needs_the_model_and_its_metadata(run):
    assert latest_checkpoint(run) == run / "checkpoints" / "iter-000002"
    (run / "checkpoints" / "iter-000002" / "model.safetensors").unlink()
    assert latest_checkpoint(run) == run / "checkpoints" / "iter-000001"
    assert Path(latest_checkpoint(run)).is_dir()


def test_the_readme_reliability_section_names_tests_that_exist():
    import re

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Reliability", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"\b(test_\w+)`", section))
    assert len(named) >= 12
    defined = {m for path in (root / "tests").glob("test_*.py")
               for m in re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M)}
    assert named <= defined, sorted(named - defined)
    for field in RESUME_CHANGEABLE:  # the allowed list is the code's
        assert f"`{field}`" in section, field

"""The shared pieces in rewards/utils.py: atomic writes, import_attr, ConfigBase."""

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rewards import utils
from rewards.utils import (
    BadSpecError,
    ConfigBase,
    SpecAttributeError,
    SpecImportError,
    SpecModuleNotFoundError,
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    clear_interrupted_writes,
    import_attr,
    parse_overrides,
)


# ------------------------------------------------------------------------------------------------ atomic writes
@pytest.fixture
def fsyncs(monkeypatch):
    """Count os.fsync calls (they still run)."""
    calls = []
    real = os.fsync

    def counting(fd):
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_atomic_write_text_and_bytes_replace_the_file_and_fsync_it(tmp_path, fsyncs):
    path = tmp_path / "out.json"
    path.write_text("old")
    assert atomic_write_text(path, "new ü\n") == path
    assert path.read_text(encoding="utf-8") == "new ü\n"
    assert fsyncs, "the new file was not fsynced before the rename"
    n = len(fsyncs)
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01" and len(fsyncs) > n
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_an_atomic_file_gets_the_permissions_of_an_ordinary_write(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x")
    (tmp_path / "b.txt").write_text("x")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode)


def test_a_failure_mid_write_keeps_the_old_content_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "rows.jsonl"
    path.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write("half a ro")
        fh.flush()
        raise KeyboardInterrupt  # killed mid-write
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)  # the disk fails after the data is written
    with pytest.raises(OSError, match="Input/output"):
        atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_atomic_path_gives_writers_a_name_with_the_final_suffix(tmp_path, fsyncs):
    final = tmp_path / "model.zip"
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.zip.tmp-") and tmp.suffix == ".zip"
        assert tmp.is_file() and not final.exists()
        Path(tmp).write_bytes(b"zip")
    assert final.read_bytes() == b"zip" and not tmp.exists() and fsyncs
    with atomic_path(tmp_path / "fig.png", suffix=".PNG") as tmp:
        assert tmp.suffix == ".PNG"
        tmp.write_bytes(b"png")
    assert (tmp_path / "fig.png").read_bytes() == b"png"


def test_atomic_directory_builds_next_to_the_target_and_replaces_it_when_complete(tmp_path, fsyncs):
    final = tmp_path / "ckpt"
    with atomic_directory(final) as tmp:
        assert tmp.parent == tmp_path and tmp.is_dir() and not final.exists()
        (tmp / "sub").mkdir()
        (tmp / "sub" / "w.bin").write_bytes(b"1")
        (tmp / "config.json").write_text("{}")
    assert (final / "sub" / "w.bin").read_bytes() == b"1" and len(fsyncs) >= 2  # both files fsynced
    with atomic_directory(final) as tmp:
        (tmp / "config.json").write_text('{"v": 2}')
    assert (final / "config.json").read_text() == '{"v": 2}' and not (final / "sub").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary, no moved-aside old copy


def test_a_failed_atomic_directory_keeps_the_old_one_and_leaves_no_temporary(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "config.json").write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_directory(final) as tmp:
        (tmp / "config.json").write_text("new")
        raise RuntimeError("disk full")
    assert (final / "config.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_failed_rename_puts_the_old_directory_back(tmp_path, monkeypatch):
    final = tmp_path / "model"
    final.mkdir()
    (final / "config.json").write_text("old")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst) == final and ".tmp-" in Path(src).name:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"), atomic_directory(final) as tmp:
        (tmp / "config.json").write_text("new")
    assert (final / "config.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_an_interrupt_between_the_two_renames_puts_the_old_directory_back(tmp_path, monkeypatch):
    final = tmp_path / "model"
    final.mkdir()
    (final / "config.json").write_text("old")
    real_replace = os.replace

    def interrupted_replace(src, dst):
        if Path(dst) == final and ".tmp-" in Path(src).name:
            raise KeyboardInterrupt  # Ctrl-C after the old one was moved aside, before the new one moved in
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt), atomic_directory(final) as tmp:
        (tmp / "config.json").write_text("new")
    assert (final / "config.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_directory_without_replace_keeps_what_another_writer_finished_first(tmp_path):
    final = tmp_path / "cache"
    with pytest.raises(FileExistsError), atomic_directory(final, replace=False) as tmp:
        (tmp / "model.safetensors").write_text("mine")
        final.mkdir()  # another process renames its complete copy into place meanwhile
        (final / "model.safetensors").write_text("theirs")
    assert (final / "model.safetensors").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_clear_interrupted_writes_removes_temporaries_and_puts_back_a_moved_aside_original(tmp_path):
    # what a process killed inside atomic_directory(tmp_path / "model") between its two renames leaves: the old
    # directory moved aside, the complete new one under its temporary name, nothing at "model"
    (tmp_path / ".model.old-0123abcd").mkdir()
    (tmp_path / ".model.old-0123abcd" / "config.json").write_text("old")
    (tmp_path / ".model.tmp-89abcdef").mkdir()
    (tmp_path / "curves.png").write_text("done")
    (tmp_path / ".curves.png.tmp-0123abcd.png").write_text("half")  # a killed atomic_path writer
    (tmp_path / "cache").mkdir()
    (tmp_path / ".cache.old-fedcba98").mkdir()  # "cache" exists: the moved-aside copy is stale
    (tmp_path / ".notes").write_text("not a temporary")
    logs = []
    handled = clear_interrupted_writes(tmp_path, logs.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes", "cache", "curves.png", "model"]
    assert (tmp_path / "model" / "config.json").read_text() == "old"
    assert len(handled) == len(logs) == 4 and sum("restored" in line for line in logs) == 1
    assert clear_interrupted_writes(tmp_path / "missing") == []


def test_no_hand_written_atomic_write_is_left_in_the_packages():
    root = Path(__file__).resolve().parents[1]
    for package in ("agents", "dialogue_env", "rewards"):
        for path in (root / package).rglob("*.py"):
            if path == Path(utils.__file__).resolve():
                continue
            text = path.read_text(encoding="utf-8")
            for needle in ("os.replace(", "mkstemp(", "mkdtemp("):
                assert needle not in text, f"{path.relative_to(root)} writes with {needle}: use rewards.utils"


# -------------------------------------------------------------------------------------------------- import_attr
def test_import_attr_follows_the_module_and_the_attribute_path():
    import json.decoder

    assert import_attr("json:JSONDecoder") is json.JSONDecoder
    assert import_attr("json.decoder:JSONDecoder.decode") is json.decoder.JSONDecoder.decode
    assert import_attr("rewards.utils:import_attr") is import_attr


@pytest.mark.parametrize("spec", ["json", "json:", ":loads", "json:a..b", "json:loads.", ""])
def test_import_attr_rejects_a_malformed_spec_with_the_expected_form(spec):
    with pytest.raises(BadSpecError, match=r"must look like 'package\.module:attr'") as info:
        import_attr(spec)
    assert isinstance(info.value, ValueError) and repr(spec) in str(info.value)


def test_import_attr_names_a_missing_module():
    with pytest.raises(SpecModuleNotFoundError, match="no module named 'no_such_pkg_x'.*installed") as info:
        import_attr("no_such_pkg_x.sub:Thing")
    err = info.value
    assert isinstance(err, ModuleNotFoundError) and isinstance(err, SpecImportError)
    assert err.name == "no_such_pkg_x" and err.module == "no_such_pkg_x.sub" and err.attr == "Thing"
    assert "'no_such_pkg_x.sub:Thing'" in str(err)


def test_import_attr_names_a_missing_attribute():
    with pytest.raises(SpecAttributeError, match="module 'json' has no attribute 'JSONDecoder.nope'") as info:
        import_attr("json:JSONDecoder.nope")
    assert isinstance(info.value, ImportError) and info.value.name == "nope"


def test_import_attr_reports_a_module_that_fails_to_import(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin_x.py").write_text("import no_such_dependency_x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SpecImportError, match="importing 'broken_plugin_x' failed: No module named "
                                              "'no_such_dependency_x'") as info:
        import_attr("broken_plugin_x:thing")
    assert not isinstance(info.value, SpecModuleNotFoundError)  # the module exists; its dependency does not
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


# ------------------------------------------------------------------------------------------------------ configs
@dataclass
class _Settings(ConfigBase):
    config_label = "test setting"
    config_examples = "tests/ for nothing"

    lr: float = 1e-3
    steps: int = 10
    limit: float | None = None
    name: str = "run"
    extra: dict = field(default_factory=dict)

    def validate(self):
        if self.steps < 1:
            raise ValueError(f"steps={self.steps} must be at least 1")
        return self


def test_from_dict_rejects_unknown_keys_and_lists_the_valid_fields():
    with pytest.raises(ValueError, match=r"unknown test setting\(s\) \['lrate', 'zz'\]; valid fields: "
                                         r"\['extra', 'limit', 'lr', 'name', 'steps'\]"):
        _Settings.from_dict({"lrate": 1, "zz": 2, "steps": 3})


def test_from_dict_turns_yaml_number_strings_into_the_fields_type():
    cfg = _Settings.from_dict({"lr": "1e-4", "steps": "20", "limit": "null", "name": "1e-4"})
    assert cfg.lr == 1e-4 and isinstance(cfg.lr, float)
    assert cfg.steps == 20 and isinstance(cfg.steps, int)
    assert cfg.limit is None and cfg.name == "1e-4"  # a str field keeps its string
    assert _Settings.from_dict({"limit": "5e-1"}).limit == 0.5
    with pytest.raises(ValueError, match=r"config field lr='fast' is not a number \(float expected\)"):
        _Settings.from_dict({"lr": "fast"})
    with pytest.raises(ValueError, match=r"config field steps='1e3' is not a number \(int expected\)"):
        _Settings.from_dict({"steps": "1e3"})


def test_from_dict_validates_and_to_dict_round_trips():
    with pytest.raises(ValueError, match="steps=0 must be at least 1"):
        _Settings.from_dict({"steps": 0})
    cfg = _Settings.from_dict({"lr": 0.5, "extra": {"a": [1]}})
    assert cfg.to_dict() == {"lr": 0.5, "steps": 10, "limit": None, "name": "run", "extra": {"a": [1]}}
    assert _Settings.from_dict(cfg.to_dict()) == cfg


def test_from_yaml_reads_a_mapping_applies_overrides_and_names_the_path_in_errors(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("lr: 1e-4\nsteps: 5\n")  # YAML 1.1: 1e-4 (no dot) is a string
    cfg = _Settings.from_yaml(path, steps=7)
    assert cfg.lr == 1e-4 and cfg.steps == 7
    path.write_text("")
    assert _Settings.from_yaml(path) == _Settings()
    path.write_text("- lr\n- steps\n")
    with pytest.raises(ValueError, match=f"{path}: expected a mapping of test settings at the top level"):
        _Settings.from_yaml(path)
    with pytest.raises(FileNotFoundError, match=r"config file .*nope\.yaml does not exist \(see tests/ for nothing\)"):
        _Settings.from_yaml(tmp_path / "nope.yaml")
    path.write_text("bad: 1\n")
    with pytest.raises(ValueError, match=r"unknown test setting\(s\) \['bad'\]"):
        _Settings.from_yaml(path)


def test_parse_overrides_reads_yaml_scalars():
    overrides = parse_overrides(["lr=1e-4", "steps = 8", "limit=null", "name=a=b", "extra={k: [1, 2]}"])
    assert overrides == {"lr": "1e-4", "steps": 8, "limit": None, "name": "a=b", "extra": {"k": [1, 2]}}
    cfg = _Settings.from_dict(overrides)
    assert cfg.lr == 1e-4 and cfg.extra == {"k": [1, 2]}
    with pytest.raises(ValueError, match="override 'steps' must look like field=value"):
        parse_overrides(["steps"])


def test_the_configs_keep_their_own_wording():
    from agents.compare import CompareConfig
    from agents.ppo.config import PPOConfig
    from agents.ppo.config import parse_overrides as ppo_parse_overrides

    assert ppo_parse_overrides is parse_overrides
    with pytest.raises(ValueError, match=r"unknown PPO config field\(s\) \['lr'\]"):
        PPOConfig.from_dict({"lr": 1e-4})
    with pytest.raises(ValueError, match=r"unknown compare setting\(s\) \['budget'\]"):
        CompareConfig.from_dict({"budget": 10})
    with pytest.raises(FileNotFoundError, match=r"\(see configs/ for examples\)"):
        PPOConfig.from_yaml("no/such.yaml")
    with pytest.raises(FileNotFoundError, match=r"\(see the presets compare and compare_tiny\)"):
        CompareConfig.from_yaml("no/such.yaml")
    assert CompareConfig.from_dict({"budget_steps": "1024", "budget_seconds": "1e2"}).budget_seconds == 100.0

"""The package as a user installs it: a wheel in a fresh virtual environment (no editable install, no repository on
the path) finds its presets and runs ``dialogue-rl compare``."""

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """A fresh venv with only our wheel installed; the dependencies come from this interpreter's site-packages,
    added as a plain path (so the editable install's finder there is not run)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy of the sources: setuptools leaves build/ and *.egg-info/ in the source tree, and a stale
    # build/lib would put removed modules into the next wheel.
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "runs",
        "results", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True, text=True)
    wheel = next((tmp / "dist").glob("dialogue_rl-*.whl"))
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, text=True)
    return env_dir, tmp


def _run(env_dir, cwd, *args):
    return subprocess.run([str(env_dir / "bin" / "dialogue-rl"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_installed_wheel_imports_from_site_packages_not_the_repository(wheel_env):
    env_dir, tmp = wheel_env
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import agents, agents.presets as p; "
                            "print(agents.__file__); print(p.preset_names())"], cwd=tmp, capture_output=True,
                           text=True, check=True).stdout
    assert str(ROOT) not in where.splitlines()[0] and "site-packages" in where.splitlines()[0]
    assert "compare_tiny" in where and "demo" in where and "tiny" in where


def test_installed_wheel_runs_compare_with_its_presets(wheel_env):
    env_dir, tmp = wheel_env
    help_run = _run(env_dir, tmp, "compare", "--help")
    assert help_run.returncode == 0 and "--agents" in help_run.stdout
    out = tmp / "results"
    # compare_tiny is a shipped preset, and the ppo agent on tiny-random trains from the shipped "tiny" preset
    run = _run(env_dir, tmp, "compare", "--config", "compare_tiny", "--agents", "ppo,random", "--budget-steps", "32",
               "--eval-limit", "2", "--no-progress", "--out", str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["summaries"]) == {"ppo", "random"}
    # the tiny preset's 4 envs x 12 tokens per iteration: one iteration covers the 32-step budget
    assert summary["summaries"]["ppo"]["train_env_steps"] <= 4 * 12
    missing = _run(env_dir, tmp, "compare", "--config", "no_such_preset", "--out", str(out))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "no_such_preset" in missing.stderr and "compare_tiny" in missing.stderr

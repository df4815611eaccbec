"""Data-parallel and sharded PPO under torchrun, on the CPU with gloo, in real separate processes.

Each run is started the documented way, ``python -m torch.distributed.run --nproc_per_node N -m agents.ppo.train``
(= ``torchrun ...``), on the tiny model."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agents.ppo.checkpoint import latest_checkpoint, read_trainer_state
from agents.ppo.config import PPOConfig
from agents.ppo.policy import PolicyWithValue
from dialogue_env.models import load_policy

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")
# 8 replies per iteration in 4 minibatches of 2: a minibatch often holds rows of one rank only, which the
# zero-weight path must handle; no before/after evaluation (speed)
SMALL = ["num_envs=8", "num_minibatches=4", "final_split=null", "logger=none", "checkpoint_every=1"]
TOL = 1e-5  # float32, the same maths summed in another order


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _command(nproc: int | None, out: Path, *settings: str, resume: bool = False) -> list:
    launcher = [sys.executable] if nproc is None else [sys.executable, "-m", "torch.distributed.run",
                                                       "--nproc_per_node", str(nproc)]
    return launcher + ["-m", "agents.ppo.train", "--config", TINY, "--out", str(out), "--no-progress",
                       *(["--resume"] if resume else []), "--set", *settings]


def _run(nproc: int | None, out: Path, *settings: str, resume: bool = False) -> str:
    """Train in ``nproc`` torchrun processes (``None``: one plain process); return its output."""
    done = subprocess.run(_command(nproc, out, *settings, resume=resume), cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout + done.stderr


def _trainable(ckpt: Path) -> dict:
    return read_trainer_state(ckpt)["trainable"]


def _model(ckpt: Path) -> dict:
    return load_file(str(ckpt / "model.safetensors"))


def _max_diff(a: dict, b: dict) -> float:
    assert sorted(a) == sorted(b)
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    """Two DDP processes, two iterations, a checkpoint after each."""
    out = tmp_path_factory.mktemp("ddp2") / "run"
    _run(2, out, *SMALL, "total_iterations=2")
    return out


def test_two_processes_give_the_parameters_of_one_process_with_the_global_batch(two_rank_run, tmp_path):
    # one plain process, the same global batch of 8 replies, one generator per reply as under torchrun
    _run(None, tmp_path / "one", *SMALL, "total_iterations=1", "seed_per_reply=true")
    one = _trainable(tmp_path / "one" / "checkpoints" / "iter-000001")
    two = _trainable(two_rank_run / "checkpoints" / "iter-000001")
    start = {k: v.detach() for k, v in PolicyWithValue(load_policy("tiny-random")[0],
                                                         num_layers_unfrozen=1).named_parameters()}
    moved = max(float((one[k] - start[k]).abs().max()) for k in one if not k.startswith("value_head"))
    assert _max_diff(one, two) < TOL < moved / 100  # equal, after a real update
    # the optimizer moments too (the same gradients were averaged)
    s1 = read_trainer_state(tmp_path / "one" / "checkpoints" / "iter-000001")["optimizer"]["state"]
    s2 = read_trainer_state(two_rank_run / "checkpoints" / "iter-000001")["optimizer"]["state"]
    for key in s1:
        torch.testing.assert_close(s1[key]["exp_avg"], s2[key]["exp_avg"], rtol=1e-4, atol=1e-7)
    # other samples (the one-generator sampling of a plain process) give other parameters: the test can fail
    _run(None, tmp_path / "other", *SMALL, "total_iterations=1", "seed_per_reply=false")
    assert _max_diff(_trainable(tmp_path / "other" / "checkpoints" / "iter-000001"), two) > 100 * TOL


def _children(pid: int) -> list:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            found += [int(child)] + _children(int(child))
    return found


def test_a_killed_two_rank_run_resumes_on_one_and_on_two_ranks(tmp_path):
    out = tmp_path / "run"
    cmd = _command(2, out, "total_iterations=200", "final_split=null", "logger=none", "checkpoint_every=2")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and latest_checkpoint(out) is None and proc.poll() is None:
            time.sleep(0.1)
        assert latest_checkpoint(out) is not None, f"no checkpoint appeared (torchrun exit code {proc.poll()})"
    finally:  # kill -9 the launcher and its workers (they run in sessions of their own)
        for pid in [proc.pid] + _children(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    saved = int(latest_checkpoint(out).name.split("-")[1])
    assert saved >= 2 and saved % 2 == 0
    results = {}
    for nproc in (1, 2):
        again = tmp_path / f"resumed-{nproc}"
        shutil.copytree(out, again)
        log = _run(nproc, again, f"total_iterations={saved + 1}", "final_split=null", "logger=none",
                   "checkpoint_every=2", resume=True)
        assert f"resumed from {again / 'checkpoints' / f'iter-{saved:06d}'} at iteration {saved}" in log
        last = latest_checkpoint(again)
        assert last.name == f"iter-{saved + 1:06d}"
        meta = json.loads((last / "dialogue_rl.json").read_text())
        assert meta["progress"]["iteration"] == saved + 1 and meta["progress"]["episodes"] == 4 * (saved + 1)
        results[nproc] = _trainable(last)
    # the same run on either world size: replies are seeded per row of the global batch
    assert _max_diff(results[1], results[2]) < TOL


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    """Two FSDP2 processes, two iterations, a checkpoint after each."""
    out = tmp_path_factory.mktemp("fsdp2") / "run"
    _run(2, out, *SMALL, "total_iterations=2", "fsdp=true")
    return out


def test_fsdp2_two_ranks_train_and_the_final_checkpoint_loads_with_policy(two_rank_run, fsdp_run, tmp_path):
    last = latest_checkpoint(fsdp_run)
    assert last.name == "iter-000002"
    shards = sorted(p.name for p in (last / "sharded").iterdir())
    assert len(shards) == 2 and all(name.endswith(".safetensors") for name in shards)  # one file per rank
    # FSDP2 computes what DDP computes: the same plain model after two iterations
    assert _max_diff(_model(last), _model(two_rank_run / "checkpoints" / "iter-000002")) < TOL
    done = subprocess.run([sys.executable, "-m", "agents.cli", "evaluate", "--policy", str(fsdp_run), "--split",
                           "test", "--limit", "3", "--batch-size", "3", "--max-new-tokens", "4", "--no-progress",
                           "--out", str(tmp_path / "eval.json")], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"using its newest checkpoint {last}" in done.stdout + done.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["n"] == 3


def test_fsdp2_shards_resume_on_another_world_size(fsdp_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(fsdp_run, out)
    shutil.rmtree(out / "checkpoints" / "iter-000002")
    log = _run(1, out, *SMALL, "total_iterations=2", "fsdp=true", resume=True)  # 2 ranks' shards, 1 rank
    assert "at iteration 1" in log
    assert _max_diff(_model(latest_checkpoint(out)), _model(fsdp_run / "checkpoints" / "iter-000002")) < TOL


def test_world_size_must_split_the_global_batch_and_replies_have_their_own_seeds(tmp_path):
    done = subprocess.run(_command(2, tmp_path / "run", "num_envs=6", "samples_per_context=2",
                                   "score_baseline=group", "final_split=null", "logger=none"),
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "dialogue-rl: error: num_envs=6 is the global batch, split over 2 processes" in done.stderr
    done = subprocess.run(_command(2, tmp_path / "run", "seed_per_reply=false", "final_split=null", "logger=none"),
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "dialogue-rl: error: seed_per_reply=false draws" in done.stderr


def test_fsdp_needs_torchrun_and_refuses_lora():
    from agents.ppo.trainer import train
    from rewards.utils import ConfigError

    with pytest.raises(ConfigError, match="start the run with torchrun"):
        train(PPOConfig.from_yaml(TINY, fsdp=True), "/nonexistent/never-written")
    with pytest.raises(ValueError, match="fsdp: true with lora_r > 0"):
        PPOConfig.from_yaml(TINY, fsdp=True, lora_r=4).validate()


def test_lora_reference_is_the_base_with_adapters_off_held_once():
    pytest.importorskip("peft")
    lm, tok = load_policy("tiny-random")
    base = load_policy("tiny-random")[0]
    policy = PolicyWithValue(lm, num_layers_unfrozen=1, lora_r=4)
    assert policy.ref_layers is None  # no copy of the top layers
    n_plain = sum(p.numel() for p in PolicyWithValue(load_policy("tiny-random")[0], num_layers_unfrozen=1).parameters())
    n_lora = sum(p.numel() for p in policy.parameters())
    adapters = sum(p.numel() for p in policy.trainable_parameters() if p not in set(policy.value_head.parameters()))
    top = sum(p.numel() for p in base.model.layers[-1:].parameters()) + base.model.norm.weight.numel()
    assert n_lora == n_plain - top + adapters  # the reference costs no parameters
    for p in policy.trainable_parameters():  # adapters away from zero, so policy != reference
        torch.nn.init.normal_(p, std=0.5)
    ids = tok("hello there, how are you", return_tensors="pt")["input_ids"]
    mask = torch.ones_like(ids)
    h = policy.trunk(ids, mask)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    with torch.no_grad():
        ref = policy.reference_logits(h, mask)
        expected = base(input_ids=ids, attention_mask=mask).logits
        pol, _ = policy.policy_head(h, mask)
    torch.testing.assert_close(ref, expected, rtol=1e-4, atol=1e-4)
    assert float((pol - expected).abs().max()) > 1e-2
    assert [n for n, p in policy.named_parameters() if p.requires_grad] == trainable  # adapters still trainable


def test_lora_under_ddp_gives_the_one_process_adapters(tmp_path):
    pytest.importorskip("peft")
    lora = [*SMALL, "total_iterations=1", "lora_r=4", "num_layers_unfrozen=-1"]
    _run(None, tmp_path / "one", *lora, "seed_per_reply=true")
    _run(2, tmp_path / "two", *lora)
    one = _trainable(tmp_path / "one" / "checkpoints" / "iter-000001")
    two = _trainable(tmp_path / "two" / "checkpoints" / "iter-000001")
    assert any("lora_" in k for k in one) and all("lora_" in k or k.startswith("value_head") for k in one)
    assert _max_diff(one, two) < TOL


@pytest.mark.parametrize("fsdp", [False, True])
def test_without_a_critic_two_ranks_give_the_one_process_parameters(tmp_path, fsdp):
    # the frozen value head is left out of DDP's buckets (DDP would wait for its gradient) and FSDP2's optimizer
    critic_free = [*SMALL, "total_iterations=1", "advantage_estimator=returns", "num_envs=8",
                   "samples_per_context=4", "score_baseline=group"]
    _run(None, tmp_path / "one", *critic_free, "seed_per_reply=true")
    _run(2, tmp_path / "two", *critic_free, f"fsdp={str(fsdp).lower()}")
    one = _model(tmp_path / "one" / "checkpoints" / "iter-000001")
    two = _model(tmp_path / "two" / "checkpoints" / "iter-000001")
    assert _max_diff(one, two) < TOL
    assert not any(k.startswith("value_head") for k in _trainable(tmp_path / "one" / "checkpoints" / "iter-000001"))


def test_the_documented_command_works_from_an_installed_copy(tmp_path):
    """``torchrun --nproc_per_node 2 -m agents.ppo.train --config tiny --out DIR`` with the package installed (no
    source tree on the path, the config taken by name from the package)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "results", "build", "dist",
                                                                 "*.egg-info", "__pycache__", ".*cache", "tests"))
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(source)], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    env = {**_env(), "PYTHONPATH": str(site)}
    work = tmp_path / "elsewhere"
    work.mkdir()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
                           "agents.ppo.train", "--config", "tiny", "--out", "run", "--no-progress", "--set",
                           "logger=none", "final_split=null"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    assert done.stdout.count("[dialogue-rl] run directory: run") == 1  # rank 0 speaks
    assert latest_checkpoint(work / "run").name == "iter-000002"
    where = subprocess.run([sys.executable, "-c", "import agents.ppo.distributed as m; print(m.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(site))


def test_early_stopping_and_the_time_budget_stop_every_rank_together(tmp_path):
    # target_kl: the epochs stop after the first minibatch whose (global) approx_kl exceeds it; a rank deciding on
    # its own rows alone would leave the other waiting in DDP's all-reduce. time_limit_s: one iteration, then all stop.
    stop = [*SMALL, "total_iterations=5", "target_kl=1e-9", "time_limit_s=0.001"]
    _run(None, tmp_path / "one", *stop, "seed_per_reply=true")
    _run(2, tmp_path / "two", *stop)
    for run in ("one", "two"):
        assert latest_checkpoint(tmp_path / run).name == "iter-000001"
    assert _max_diff(_trainable(tmp_path / "one" / "checkpoints" / "iter-000001"),
                     _trainable(tmp_path / "two" / "checkpoints" / "iter-000001")) < TOL


def test_minibatch_weights_make_the_mean_over_ranks_the_global_token_mean():
    from agents.ppo import distributed as ddp

    g = torch.Generator().manual_seed(0)
    B, world = 12, 3
    lengths = torch.randint(1, 9, (B,), generator=g)
    values = [torch.randn(int(n), generator=g) for n in lengths]  # per-token losses of each row
    rows = torch.tensor([0, 5, 6, 7, 11])  # rank 0 holds 0, rank 1 holds 5, 6, 7, rank 2 holds 11
    expected = torch.cat([values[i] for i in rows.tolist()]).mean()
    total, shares = 0.0, 0.0
    for rank in range(world):
        d = ddp.Dist(rank=rank, world=world, launched=True)
        local, weight, share = ddp.minibatch(d, rows, lengths, B)
        mine = [int(i) + rank * B // world for i in local]
        assert all(r in rows.tolist() for r in mine)
        total += weight * float(torch.cat([values[i] for i in mine]).mean()) / world  # what DDP averages
        shares += share
    assert abs(total - float(expected)) < 1e-6 and abs(shares - 1.0) < 1e-9
    # a rank with none of the minibatch's rows runs one of its rows with weight 0 (DDP needs its backward)
    local, weight, share = ddp.minibatch(ddp.Dist(rank=1, world=world, launched=True), torch.tensor([0, 11]),
                                         lengths, B)
    assert len(local) == 1 and weight == 0.0 and share == 0.0


def test_accelerate_launch_starts_the_same_run(two_rank_run, tmp_path):
    pytest.importorskip("accelerate")
    out = tmp_path / "acc"
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m",
                           "agents.ppo.train", "--config", TINY, "--out", str(out), "--no-progress", "--set", *SMALL,
                           "total_iterations=1"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    assert _max_diff(_trainable(out / "checkpoints" / "iter-000001"),
                     _trainable(two_rank_run / "checkpoints" / "iter-000001")) < TOL

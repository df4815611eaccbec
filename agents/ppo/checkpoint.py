"""PPO checkpoints: written atomically, read without running code, checked before a run resumes from one.

``RUN/checkpoints/iter-NNNNNN/`` holds

- ``config.json``, ``model.safetensors``, ``generation_config.json`` and the tokenizer files: the merged policy as
  a Hugging Face model (``load_policy(path)``, ``dialogue-rl evaluate --policy path``);
- ``dialogue_rl.json``: the run config, the base model, the iteration and the progress counters;
- ``trainer_state.safetensors``: every tensor of the trainer state (trainable weights and value head, optimizer
  moments and steps, the torch RNG and the sampling generator's state: a CPU generator's, or on CUDA the device
  generator's; resuming on another device type reseeds the generator from the saved state);
- ``trainer_state.json``: the rest of it (optimizer hyperparameters, KL controller, numpy and python RNG states, the
  dialogue sampler, progress), tensors referred to by their name in the safetensors file;
- with ``fsdp: true`` (FSDP2 under torchrun), ``sharded/``: each process's shards of the trainable weights and
  optimizer state, written by ``torch.distributed.checkpoint`` as safetensors files with the shard offsets as JSON
  in their headers (``agents.ppo.distributed.save_sharded``); ``trainer_state.*`` then hold the rest only.

Every file is JSON, text or safetensors: reading a checkpoint builds only dicts, lists, tuples, strings, numbers,
numpy number arrays and tensors, so it can never run code (unlike a pickle, which ``torch.load(weights_only=False)``
would execute). Checkpoints of older versions kept this state in ``trainer_state.pt``, a pickle: ``--resume``
refuses them (:data:`LEGACY_STATE`) rather than load one.

A directory is written under a hidden temporary name, every file ``fsync``ed, then renamed into place
(``rewards.utils.atomic_directory``), so ``iter-*`` directories are always complete unless damaged afterwards;
:func:`find_resume_checkpoint` then skips a damaged newest one for the previous complete one, and
:func:`remove_stale_temporaries` clears what a killed write left behind.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.ppo.config import RESUME_CHANGEABLE, PPOConfig
from rewards.utils import atomic_directory, atomic_path, atomic_write_text, clear_interrupted_writes

CHECKPOINT_GLOB = "iter-*"
META = "dialogue_rl.json"
STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
LEGACY_STATE = "trainer_state.pt"
SHARDED = "sharded"
FORMAT = "dialogue-rl-ppo-checkpoint"
VERSION = 2
_NDARRAY_KINDS = "biuf"  # bool, signed / unsigned integer, float arrays only


class ResumeError(ValueError):
    """``--resume`` cannot continue this run: an old-format checkpoint, a changed config, or no readable one."""


# ------------------------------------------------------------------------------------- JSON + tensors codec
def _encode(obj: Any, tensors: dict, path: str) -> Any:
    """``obj`` as JSON, its tensors moved into ``tensors`` (by a name derived from ``path``)."""
    if isinstance(obj, torch.Tensor):
        key = path or "tensor"
        while key in tensors:
            key += "+"
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _NDARRAY_KINDS:
            raise TypeError(f"cannot store a numpy array of dtype {obj.dtype} at {path!r} in a checkpoint")
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors, f"{path}/{k}") for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors, f"{path}/key"), _encode(v, tensors, f"{path}/{k}")]
                              for k, v in obj.items()]}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors, path)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} at {path!r} in a checkpoint (tensors and plain data only)")


def _decode(obj: Any, tensors: dict) -> Any:
    """The inverse of :func:`_encode`: plain data, numpy number arrays and the named tensors; nothing else."""
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        key = obj["__tensor__"]
        if key not in tensors:
            raise ValueError(f"tensor {key!r} is missing from {STATE_TENSORS}")
        return tensors[key]
    if "__ndarray__" in obj:
        dtype = np.dtype(str(obj["dtype"]))
        if dtype.kind not in _NDARRAY_KINDS:
            raise ValueError(f"numpy dtype {dtype} is not a number type")
        return np.asarray(obj["__ndarray__"], dtype=dtype).reshape(obj["shape"])
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def write_trainer_state(directory: str | os.PathLike, state: dict) -> None:
    """Write ``state`` (tensors, numpy number arrays and plain data, nested) as ``trainer_state.safetensors`` +
    ``trainer_state.json`` in ``directory``, each atomically."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tensors: dict = {}
    doc = {"format": FORMAT, "version": VERSION, "state": _encode(state, tensors, "")}
    with atomic_path(directory / STATE_TENSORS) as tmp:
        save_file(tensors, str(tmp))
    atomic_write_text(directory / STATE_JSON, json.dumps(doc))


def read_trainer_state(directory: str | os.PathLike) -> dict:
    """The state :func:`write_trainer_state` wrote in ``directory``. Reads JSON and safetensors only (no pickle)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    doc = json.loads((directory / STATE_JSON).read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError(f"{directory / STATE_JSON} is not a version-{VERSION} {FORMAT} trainer state")
    return _decode(doc["state"], load_file(str(directory / STATE_TENSORS)))


# --------------------------------------------------------------------------------------- the trainer's state
def capture_state(iteration: int, policy, optimizer, kl_ctl, gen: torch.Generator, sampler, progress: dict,
                  sharded: bool = False) -> dict:
    """Everything ``--resume`` needs to continue bit for bit: trainable weights, optimizer, KL controller, RNGs.
    ``sharded``: the weights and optimizer moments are in ``sharded/``; only the optimizer's hyperparameters here."""
    return {
        "iteration": iteration,
        "trainable": {} if sharded else {name: p for name, p in policy.named_parameters() if p.requires_grad},
        "optimizer": ({"param_groups": optimizer.state_dict()["param_groups"]} if sharded
                      else optimizer.state_dict()),
        "kl_ctl": kl_ctl.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "sampler_rng": gen.get_state(),
        "sampler": sampler.state_dict(),
        "progress": dict(progress),
    }


def restore_state(state: dict, policy, optimizer, kl_ctl, gen: torch.Generator, sampler, where: Path) -> dict:
    """Put :func:`capture_state`'s ``state`` back; returns the progress counters. A sharded policy (FSDP2) gets
    its weights and optimizer moments from ``where/sharded`` (``agents.ppo.distributed.load_sharded``)."""
    where = Path(where)
    if getattr(policy, "sharded", False):
        if not (where / SHARDED).is_dir():
            raise ResumeError(f"checkpoint {where} was not written with fsdp: true (no {SHARDED}/); resume it with the "
                              f"fsdp setting it was trained with")
        from agents.ppo.distributed import load_sharded

        load_sharded(where / SHARDED, policy, optimizer)
        for group, saved in zip(optimizer.param_groups, state["optimizer"]["param_groups"]):
            group.update({k: v for k, v in saved.items() if k != "params"})
    else:
        if (where / SHARDED).is_dir():
            raise ResumeError(f"checkpoint {where} holds FSDP shards ({SHARDED}/): resume it with fsdp: true under "
                              f"torchrun")
        missing = policy.load_state_dict(state["trainable"], strict=False)
        if missing.unexpected_keys:
            raise ResumeError(f"checkpoint {where} does not match this config: unexpected {missing.unexpected_keys}")
        optimizer.load_state_dict(state["optimizer"])
    kl_ctl.load_state_dict(state["kl_ctl"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    try:
        gen.set_state(state["sampler_rng"])
    except RuntimeError:  # saved by a generator of another device type (the run moved between CPU and GPU)
        gen.manual_seed(zlib.crc32(state["sampler_rng"].numpy().tobytes()))
    sampler.load_state_dict(state["sampler"])
    return dict(state["progress"])


def save_checkpoint(out: Path, iteration: int, cfg: PPOConfig, policy, tokenizer, optimizer, kl_ctl, gen, sampler,
                    progress: dict, keep: int = 2, lm=None, sharded_dir: Path | None = None) -> Path:
    """Write ``out/checkpoints/iter-NNNNNN`` atomically (see the module docstring for its files); keep the newest
    ``keep``. Re-running the same iteration after a resume replaces the old one. FSDP2: ``lm`` is the gathered
    plain model and ``sharded_dir`` the shards every process wrote, moved in as ``sharded/``."""
    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"iter-{iteration:06d}"
    with atomic_directory(final) as tmp:
        with policy.frozen_in_float32():  # dtype autocast keeps the frozen weights in bfloat16; saved as float32
            (lm if lm is not None else policy.merged_lm()).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_trainer_state(tmp, capture_state(iteration, policy, optimizer, kl_ctl, gen, sampler, progress,
                                               sharded=sharded_dir is not None))
        if sharded_dir is not None:
            shutil.move(sharded_dir, tmp / SHARDED)  # into the directory atomic_directory publishes
        meta = {"format": FORMAT, "version": VERSION, "iteration": iteration, "base_model": cfg.model,
                "config": cfg.to_dict(), "progress": progress}
        atomic_write_text(tmp / META, json.dumps(meta, indent=2, default=str))
    for old in sorted(root.glob(CHECKPOINT_GLOB))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------------ finding a checkpoint
def latest_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint directory under ``out`` that holds a model and its ``dialogue_rl.json`` (what
    ``dialogue-rl evaluate`` needs; temporary directories of a killed write are hidden and never match)."""
    found = sorted(p for p in (Path(out) / "checkpoints").glob(CHECKPOINT_GLOB)
                   if (p / META).is_file() and (p / "model.safetensors").is_file())
    return found[-1] if found else None


def legacy_message(path: Path) -> str:
    return (f"{path / LEGACY_STATE} is a checkpoint in the old trainer_state.pt format: a pickle, which can run "
            f"arbitrary code when loaded, so dialogue-rl no longer loads it. Retrain (without --resume, or with a new "
            f"--out); or, only if you trust that file, load it yourself with torch.load(path, weights_only=False) "
            f"and write the dict again with agents.ppo.checkpoint.write_trainer_state({path}, state)")


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """``(dialogue_rl.json, trainer state)`` of one checkpoint, after checking that its model file is readable.
    Raises ``ResumeError`` for an old-format checkpoint, ``OSError`` / ``ValueError`` for a damaged one."""
    from safetensors import SafetensorError, safe_open

    if (path / LEGACY_STATE).exists() and not (path / STATE_JSON).exists():
        raise ResumeError(legacy_message(path))
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict) or "iteration" not in meta:
            raise ValueError(f"{path / META} has no config or iteration")
        state = read_trainer_state(path)
        if state.get("iteration") != meta["iteration"]:
            raise ValueError(f"{path / STATE_JSON} is at iteration {state.get('iteration')}, {META} at "
                             f"{meta['iteration']}")
        with safe_open(str(path / "model.safetensors"), framework="pt") as weights:
            weights.keys()
    except SafetensorError as err:  # not a ValueError: a truncated or foreign .safetensors file
        raise ValueError(f"unreadable safetensors file: {err}") from err
    except KeyError as err:
        raise ValueError(f"missing entry {err}") from err
    return meta, state


def find_resume_checkpoint(out: Path, log=print) -> tuple[Path, dict, dict] | None:
    """The newest readable checkpoint under ``out`` as ``(path, dialogue_rl.json, trainer state)``; ``None`` when
    there is none. A damaged one (missing, truncated or unreadable file) is logged by name and the previous one
    tried; an old-format one raises :class:`ResumeError`, as does finding only damaged ones."""
    candidates = sorted((p for p in (Path(out) / "checkpoints").glob(CHECKPOINT_GLOB) if p.is_dir()), reverse=True)
    damaged = []
    for path in candidates:
        try:
            meta, state = read_checkpoint(path)
        except ResumeError:
            raise
        except (OSError, ValueError, TypeError, AttributeError) as err:  # a damaged or foreign file
            log(f"[dialogue-rl] --resume: checkpoint {path} is damaged ({type(err).__name__}: {err}); "
                f"trying the previous one")
            damaged.append(path.name)
            continue
        if damaged:
            log(f"[dialogue-rl] --resume: using {path}, the newest complete checkpoint (skipped {damaged})")
        return path, meta, state
    if damaged:
        raise ResumeError(f"--resume: every checkpoint under {Path(out) / 'checkpoints'} is damaged ({damaged}); "
                          f"start again without --resume or with a new --out")
    return None


def check_resume_config(saved: dict, cfg: PPOConfig, where: Path, log=print) -> None:
    """Refuse to resume the run saved with config ``saved`` under a config that changes its meaning or shapes:
    a :class:`ResumeError` lists every changed field not in ``RESUME_CHANGEABLE`` as ``field: saved -> new``.
    Changes to ``RESUME_CHANGEABLE`` fields are logged and allowed."""
    new = json.loads(json.dumps(cfg.to_dict(), default=str))
    defaults = json.loads(json.dumps(PPOConfig().to_dict(), default=str))
    changed = [(k, saved.get(k, defaults[k]), v) for k, v in new.items() if saved.get(k, defaults[k]) != v]
    refused = [c for c in changed if c[0] not in RESUME_CHANGEABLE]
    if refused:
        lines = "\n".join(f"  {k}: {a!r} -> {b!r}" for k, a, b in refused)
        raise ResumeError(f"--resume: {where} was trained with a different config; these fields cannot change when "
                          f"a run resumes:\n{lines}\nSet them back to the saved values, or start a new run (another "
                          f"--out, or without --resume). Fields that may change on resume: "
                          f"{', '.join(sorted(RESUME_CHANGEABLE))}")
    if changed:
        log("[dialogue-rl] --resume with changed fields: " + ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed))


def remove_stale_temporaries(out: Path, log=print) -> None:
    """Clear what a killed checkpoint write left in ``out/checkpoints`` (``rewards.utils.clear_interrupted_writes``:
    temporary ``.iter-NNNNNN.tmp-*`` folders are removed, a checkpoint moved aside to be replaced is put back)."""
    clear_interrupted_writes(Path(out) / "checkpoints", lambda message: log(f"[dialogue-rl] {message}"))


def check_run_folder(out: Path, resume: bool) -> None:
    """Refuse an ``out`` that a run cannot be written to without destroying something: a file, or (without
    ``resume``) a folder that is not empty. Starting over in a finished run's folder would replace its first
    checkpoints, keep its later ones and mix the two runs, and a later ``--resume`` would pick the old one."""
    if out.exists() and not out.is_dir():
        raise ResumeError(f"--out {out} is a file: name a folder for the run")
    if resume or not out.is_dir() or not any(out.iterdir()):
        return
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("iter-*")) if (out / "checkpoints").is_dir() else []
    if ckpts:
        what = f"a run (checkpoints up to {ckpts[-1]})"
    else:
        what = f"files ({', '.join(sorted(p.name for p in out.iterdir())[:3])})"
    raise ResumeError(f"--out {out} already holds {what}: pass --resume to continue that run, or choose a new or "
                      f"empty folder for --out (nothing was written)")

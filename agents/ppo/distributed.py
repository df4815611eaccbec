"""Data-parallel (DDP) and sharded (FSDP2) PPO under ``torchrun``: the process group, rank helpers and the global
reductions the trainer needs. Single-process runs go through the same calls, which then do nothing.

    torchrun --nproc_per_node 2 -m agents.ppo.train --config configs/tiny.yaml --out runs/tiny2

How the work is split (``N`` processes, ``num_envs`` = ``B`` replies per iteration, **global**):

- every rank draws the same ``B / samples_per_context`` dialogues from the same seeded sampler and keeps its own
  contiguous ``B / N`` rows (whole groups of samples of a dialogue); it rolls them out through its own batched env
  (``B / N`` sub-envs) with the one collector and scores them there;
- under ``torchrun`` each reply's tokens are drawn from a generator of its own, seeded by ``(seed, iteration, row
  in the global batch)`` (:class:`RowSampler`), so a reply does not depend on which process wrote it: the run on
  ``N`` ranks is the run on one (within float tolerance), and a checkpoint resumes the same run on any world size;
- advantage (and reward) whitening, the KL fed to the adaptive controller, the logged reward, KL and loss
  statistics, ``target_kl`` early stopping and the time budget use the statistics of the whole global batch
  (:class:`Dist` ``sum`` / ``gather`` / ``any``);
- a PPO minibatch is a set of rows of the **global** batch (the same permutation on every rank); each rank computes
  the loss on the rows it holds, weighted by its share of the minibatch's tokens, and DDP (or FSDP2) averages the
  gradients, which gives exactly the gradient of the global token-mean loss;
- rank 0 logs, evaluates and writes checkpoints; the others wait at a barrier.

Only what trains is wrapped in DDP (:class:`TrainedTop`: the top ``num_layers_unfrozen`` layers, the final norm,
the value head and, if trained, the LM head, or their LoRA adapters); the frozen trunk and reference never see a
gradient, so they are not synchronised. ``fsdp: true`` shards the whole policy and the frozen reference with
``torch.distributed.fsdp.fully_shard`` instead (see :func:`shard_policy`).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rewards.utils import ConfigError

__all__ = ["Dist", "RowSampler", "TrainedTop", "check_world_size", "gathered", "load_sharded", "save_sharded", "setup",
           "shard_policy", "teardown"]


# ----------------------------------------------------------------------------------------------- the group
@dataclass
class Dist:
    """This process's place in the run: ``rank`` of ``world`` processes (``world == 1`` and ``launched`` false in
    a plain process). Every collective is a no-op for one process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun (a process group exists, even for one process)
    owns_group: bool = False  # setup() created the process group, teardown() destroys it
    comm_device: str = "cpu"  # where collectives' tensors live: cuda for nccl, cpu for gloo

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values) -> torch.Tensor:
        """Element-wise sum over processes of a float64 vector (``values``: a tensor or a sequence of numbers)."""
        t = torch.as_tensor(values, dtype=torch.float64).detach().reshape(-1).to(self.comm_device).clone()
        if self.world > 1:
            torch.distributed.all_reduce(t)
        return t.cpu()

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenation in rank order of every process's 1-D ``tensor`` (all of the same length)."""
        if self.world == 1:
            return tensor
        t = tensor.detach().to(self.comm_device).contiguous()
        parts = [torch.empty_like(t) for _ in range(self.world)]
        torch.distributed.all_gather(parts, t)
        return torch.cat(parts).to(tensor.device)

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on one of them (stop together)."""
        return bool(self.sum([float(bool(flag))])[0] > 0)

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def setup(device: str) -> tuple[Dist, str]:
    """Join the process group when started by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR`` in the environment): ``nccl`` when ``device`` is CUDA (each process on ``cuda:LOCAL_RANK``),
    ``gloo`` otherwise; or use the default group a launcher already made. Returns the :class:`Dist` and the
    device this process uses. A plain process gets ``Dist()`` and ``device`` unchanged."""
    import torch.distributed as tdist

    owns = not tdist.is_initialized()  # a launcher that made the group itself (Ray Train's TorchTrainer) is joined
    if owns and ("RANK" not in os.environ or "WORLD_SIZE" not in os.environ):
        return Dist(), device
    rank = int(os.environ["RANK"]) if owns else tdist.get_rank()
    world = int(os.environ["WORLD_SIZE"]) if owns else tdist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        local_rank %= torch.cuda.device_count()  # a launcher may show each process its own GPU only
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if owns:
        # rank 0 evaluates alone while the others wait at a barrier: allow a long evaluation
        tdist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2),
                                 device_id=torch.device(device) if cuda else None)
    return Dist(rank=rank, world=world, local_rank=local_rank, launched=True, owns_group=owns,
                comm_device=device if cuda else "cpu"), device


def teardown(d: Dist) -> None:
    if d.owns_group and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def check_world_size(cfg, world: int) -> None:
    """``num_envs`` is the global batch: each of the ``world`` processes takes ``num_envs / world`` rows, whole
    groups of ``samples_per_context`` samples. A ``ConfigError`` says which value to change otherwise."""
    if world > 1 and cfg.seed_per_reply is False:
        raise ConfigError(f"seed_per_reply=false draws a batch's replies from one generator, which {world} processes "
                          f"cannot share: set seed_per_reply to true or null (automatic) under torchrun")
    if cfg.num_envs % world or (cfg.num_envs // world) % cfg.samples_per_context:
        raise ConfigError(f"num_envs={cfg.num_envs} is the global batch, split over {world} processes: it must be a "
                          f"multiple of world size x samples_per_context = {world} x {cfg.samples_per_context} "
                          f"(each process rolls out num_envs / world size replies, whole groups of samples)")


# ----------------------------------------------------------------------------------------------- sampling
def row_seed(seed: int, iteration: int, row: int) -> int:
    """A 64-bit seed for row ``row`` of the global batch of iteration ``iteration`` (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([seed, iteration, row]).generate_state(1, np.uint64)[0])


class RowSampler:
    """One ``torch.Generator`` per reply, seeded by ``(seed, iteration, row of the global batch)``; passed to the
    collector as its ``generator``. Row ``i`` draws its tokens from its own generator only, so the replies do not
    depend on how the batch is split over processes (nor on the other rows). Its state is a function of the
    iteration: nothing to checkpoint."""

    def __init__(self, seed: int, iteration: int, rows):
        self.generators = [torch.Generator().manual_seed(row_seed(seed, iteration, int(r))) for r in rows]

    def multinomial(self, probs: torch.Tensor) -> torch.Tensor:
        """One token per row of ``probs`` (B, V), row ``i`` from generator ``i``: (B,) on the CPU."""
        probs = probs.float().cpu()
        return torch.cat([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, self.generators)])


# ----------------------------------------------------------------------------------------- the shard's rows
def shard_rows(d: Dist, batch: int) -> slice:
    """This process's rows of a global batch of ``batch`` rows."""
    per = batch // d.world
    return slice(d.rank * per, (d.rank + 1) * per)


def minibatch(d: Dist, rows_global: torch.Tensor, lengths_global: torch.Tensor, batch: int):
    """This process's part of the global minibatch ``rows_global`` and its loss weight.

    Returns ``(local_rows, weight, share)``: local row indices; ``weight = world * n_local / n`` so that the mean
    over processes of ``weight * (token-mean loss over the local rows)`` is the token-mean loss over the whole
    minibatch (``n``: its real tokens, from ``lengths_global``); ``share = n_local / n`` weighs this process's
    statistics. A process that holds none of the rows runs one of its rows with weight 0 (DDP needs every process
    in every backward)."""
    if d.world == 1:
        return rows_global, 1.0, 1.0
    sl = shard_rows(d, batch)
    mine = rows_global[(rows_global >= sl.start) & (rows_global < sl.stop)] - sl.start
    n = float(lengths_global[rows_global].sum())
    n_local = float(lengths_global[mine + sl.start].sum()) if len(mine) else 0.0
    if len(mine) == 0:
        return torch.zeros(1, dtype=torch.long), 0.0, 0.0
    return mine, d.world * n_local / n, n_local / n


def mean_var(d: Dist, x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True):
    """Mean and variance of ``x`` over the real positions of every process's batch (``masked_mean`` /
    ``masked_var`` of the global batch): two all-reduces."""
    m = mask.bool()
    xs = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device))
    total = d.sum([float(xs.sum()), float(m.sum())])
    mean = total[0] / total[1]
    sq = d.sum([float(torch.where(m, (xs - mean.to(x.dtype)) ** 2, torch.zeros((), dtype=x.dtype,
                                                                                 device=x.device)).sum())])[0]
    var = sq / (total[1] - 1) if unbiased else sq / total[1]
    return mean.to(x.device, x.dtype), var.to(x.device, x.dtype)


def whiten(d: Dist, x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``functional.masked_whiten`` with the global batch's statistics (the batch's own in one process)."""
    from agents.ppo.functional import masked_whiten

    if d.world == 1:
        return masked_whiten(x, mask, shift_mean=shift_mean)
    return masked_whiten(x, mask, shift_mean=shift_mean, mean_var=mean_var(d, x, mask))


def explained_variance(d: Dist, y_pred: torch.Tensor, y_true: torch.Tensor, mask: torch.Tensor) -> float:
    """``functional.explained_variance`` over the global batch."""
    from agents.ppo.functional import explained_variance as local

    if d.world == 1:
        return local(y_pred, y_true, mask)
    var_y = float(mean_var(d, y_true, mask, unbiased=False)[1])
    if not var_y > 0:
        return float("nan")
    return 1.0 - float(mean_var(d, y_true - y_pred, mask, unbiased=False)[1]) / var_y


# ---------------------------------------------------------------------------------------------- wrapping
class TrainedTop(nn.Module):
    """The trained part of a ``PolicyWithValue`` as a module whose ``forward`` is ``policy.policy_head``: the top
    decoder layers, the final norm, the value head and (when trained) the LM head; with LoRA the same layers, of
    which only the adapters train. DDP wraps this, not the whole model: the frozen trunk and the reference are not
    in it, so DDP neither broadcasts nor watches them."""

    def __init__(self, policy):
        super().__init__()
        self.layers = nn.ModuleList(list(policy.inner.layers[policy.split:]))
        self.norm = policy.inner.norm
        self.value_head = policy.value_head
        if policy.lm.lm_head.weight.requires_grad:
            self.lm_head = policy.lm.lm_head
        object.__setattr__(self, "policy", policy)  # not a submodule: its other parameters stay outside
        inside = {id(p) for p in self.parameters()}
        outside = [n for n, p in policy.named_parameters() if p.requires_grad and id(p) not in inside]
        if outside:
            raise RuntimeError(f"trainable parameters outside the policy's top layers: {outside[:4]}")

    def forward(self, h, mask, keep_from: int = 0):
        return self.policy.policy_head(h, mask, keep_from=keep_from)


def wrap_for_training(d: Dist, policy):
    """The callable ``(h, mask, keep_from) -> (logits, values)`` the PPO epochs use: ``policy.policy_head`` in one
    process, a DDP-wrapped :class:`TrainedTop` under torchrun (gradients averaged over processes)."""
    if not d.launched or d.world == 1 or getattr(policy, "sharded", False):
        return policy.policy_head
    from torch.nn.parallel import DistributedDataParallel

    device = next(policy.value_head.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(TrainedTop(policy), device_ids=ids, broadcast_buffers=False)


# -------------------------------------------------------------------------------------------------- FSDP2
def shard_policy(d: Dist, policy) -> None:
    """Shard ``policy`` in place with FSDP2 over all processes: one unit per decoder layer of the policy and of the
    frozen reference, the rest (embeddings, norms, LM head, value head) in the root unit, ``policy`` itself. Its
    ``policy_head`` and ``reference_logits`` become FSDP forward methods (the parameters they need are gathered
    for the call and freed after it). Generation and the rollout's scoring run inside :func:`gathered`. Build the
    optimizer after this (it must hold the sharded parameters)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    device_type = "cuda" if d.comm_device.startswith("cuda") else "cpu"
    mesh = init_device_mesh(device_type, (d.world,))
    for layer in list(policy.inner.layers) + list(policy.ref_layers or []):
        fully_shard(layer, mesh=mesh)
    fully_shard(policy, mesh=mesh)
    for method in ("policy_head", "reference_logits"):
        register_fsdp_forward_method(policy, method)
    policy.sharded = True
    policy.fast_last_layer = False  # layer_at_positions calls a layer's parts directly, past FSDP's hooks
    # The first forward makes its module FSDP's root: run one through the policy before generation calls a layer.
    hidden = policy.lm.config.hidden_size
    device = torch.device(d.comm_device)
    policy.reference_logits(torch.zeros(1, 1, hidden, device=device), torch.ones(1, 1, dtype=torch.long,
                                                                                 device=device))
    policy.reshard()  # the root keeps its weights gathered after a forward: register the shards again


def _fsdp_modules(policy) -> list:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in policy.modules() if isinstance(m, FSDPModule)]


class gathered:
    """``with gathered(policy):`` every FSDP unit of a sharded policy is all-gathered on every process and stays
    whole until the block ends, so the block may run any number of forwards without collectives (generation runs
    a rank-dependent number of decode steps; rank 0 evaluates alone). No-op for an unsharded policy. Memory: the
    whole policy and reference, as in one process, during the block; the optimizer and gradients stay sharded."""

    def __init__(self, policy):
        self.modules = _fsdp_modules(policy) if getattr(policy, "sharded", False) else []
        self.root = policy

    def __enter__(self):
        for m in self.modules:
            m.set_reshard_after_forward(False, recurse=False)
            m.unshard()
        return self

    def __exit__(self, *exc):
        for m in self.modules:
            m.reshard()
            m.set_reshard_after_forward(m is not self.root, recurse=False)
        return False


def _flat_tensors(policy, optimizer, osd: dict) -> dict:
    """The sharded trainer state as one flat ``{name: tensor}`` (trainable weights, optimizer moments and steps)."""
    flat = {f"model/{n}": p for n, p in policy.named_parameters() if p.requires_grad}
    for fqn, entries in osd["state"].items():
        for key, value in entries.items():
            flat[f"optim/{fqn}/{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return flat


def save_sharded(directory: Path, policy, optimizer) -> None:
    """Every process writes its shards of the trainable weights and optimizer state to ``directory`` with
    ``torch.distributed.checkpoint`` in safetensors files (``HuggingFaceStorageWriter``; the shard offsets are
    JSON in each file's header, so reading them runs no code: no pickle, unlike DCP's default metadata file)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageWriter
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    osd = get_optimizer_state_dict(policy, optimizer)
    dcp.save(_flat_tensors(policy, optimizer, osd),
             storage_writer=HuggingFaceStorageWriter(str(directory), save_distributed=True))


def load_sharded(directory: Path, policy, optimizer) -> None:
    """Load :func:`save_sharded`'s files into the sharded ``policy`` and ``optimizer`` (any world size: DCP
    reshards)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageReader
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    osd = get_optimizer_state_dict(policy, optimizer)  # creates the moments (a step with lr 0) to load into
    flat = _flat_tensors(policy, optimizer, osd)
    dcp.load(flat, storage_reader=HuggingFaceStorageReader(str(directory)))
    for fqn, entries in osd["state"].items():
        for key in entries:
            entries[key] = flat[f"optim/{fqn}/{key}"]
    set_optimizer_state_dict(policy, optimizer, osd)


def full_lm(d: Dist, policy):
    """Rank 0: the policy's language model as a plain (unsharded, CPU) Hugging Face model built from the gathered
    weights; other ranks: ``None``. Every process must call it (the weights are all-gathered)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from transformers import AutoModelForCausalLM

    state = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not d.main:
        return None
    lm = AutoModelForCausalLM.from_config(policy.lm.config).to(policy.lm.dtype)
    lm.load_state_dict({k[len("lm."):]: v for k, v in state.items() if k.startswith("lm.")})
    lm.generation_config = policy.lm.generation_config
    return lm

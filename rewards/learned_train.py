"""Training the ``learned`` reward model (:mod:`rewards.learned`): the Bradley–Terry maths and the training loop::

    P(y_chosen > y_rejected | x) = sigmoid(s(x, y_chosen) - s(x, y_rejected))
    loss = -mean log sigmoid(s(x, y_chosen) - s(x, y_rejected))

Held-out *pairwise accuracy* is the fraction of test pairs with ``s(chosen) > s(rejected)`` (a tie counts as wrong),
reported overall and per kind of rejected reply. ``dialogue-rl reward-model train`` (:mod:`agents.reward_model`)
drives :func:`train_reward_model`; :func:`rewards.learned.save_reward_model` writes the result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .learned import RewardModel, RewardModelConfig, TextEncoder, data_hash, format_context


# ------------------------------------------------------------------------------------------------ the maths
def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """``-mean log sigmoid(s_chosen - s_rejected)`` over pairs; ``chosen``, ``rejected``: ``(N,)`` scores.

    ``logsigmoid`` is the numerically stable ``-softplus(-(s_c - s_r))``: no overflow for large margins."""
    return -nn.functional.logsigmoid(chosen - rejected).mean()


def pairwise_accuracy(chosen: Any, rejected: Any) -> float:
    """Fraction of pairs with ``s_chosen > s_rejected`` (ties count as wrong); NaN for no pairs."""
    c = np.asarray(chosen, dtype=np.float64).reshape(-1)
    r = np.asarray(rejected, dtype=np.float64).reshape(-1)
    if c.shape != r.shape:
        raise ValueError(f"pairwise_accuracy: {c.shape[0]} chosen scores for {r.shape[0]} rejected scores")
    return float(np.mean(c > r)) if c.size else math.nan


def accuracy_by_kind(kinds: Sequence[str | None], chosen: Any, rejected: Any) -> dict[str, dict[str, float]]:
    """``{kind: {"accuracy": a, "n": n, "correct": k}}`` grouping pairs by ``kinds[i]`` (e.g. the preference
    set's ``meta.rejected_kind``: rude, dismissive, off_topic, unsafe, vague, wrong_policy); pairs whose kind is
    None are left out, and so the result is empty when no pair has a kind."""
    c = np.asarray(chosen, dtype=np.float64).reshape(-1)
    r = np.asarray(rejected, dtype=np.float64).reshape(-1)
    out: dict[str, dict[str, float]] = {}
    for kind in sorted({k for k in kinds if k is not None}):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        correct = int(np.sum(c[idx] > r[idx]))
        out[kind] = {"accuracy": correct / len(idx), "n": len(idx), "correct": correct}
    return out


# ------------------------------------------------------------------------------------------------ training
def _texts_of(pairs: Sequence[Any], turns: int, index: dict[tuple[str, str], int]) -> np.ndarray:
    """``(N, 3)`` indices (context, chosen, rejected) into ``index``, which maps (side, text) to a row."""
    rows = []
    for p in pairs:
        keys = [("left", format_context(p.context, turns)), ("right", p.chosen), ("right", p.rejected)]
        rows.append([index.setdefault(k, len(index)) for k in keys])
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def train_reward_model(train: Sequence[Any], test: Sequence[Any], *, backbone: str = "minilm", epochs: int = 10,
                       batch_size: int = 32, lr: float = 1e-3, backbone_lr: float = 5e-5, weight_decay: float = 0.01,
                       hidden: int = 256, dropout: float = 0.1, num_layers_unfrozen: int = 0, context_turns: int = 3,
                       max_length: int = 256, seed: int = 0, device: str = "cpu", progress: bool = True,
                       data_source: str = "", test_source: str = "") -> tuple[RewardModel, RewardModelConfig]:
    """Fit a :class:`RewardModel` to preference pairs (``Preference``-like: ``context``, ``chosen``,
    ``rejected``, ``meta``) with the Bradley–Terry loss; evaluate pairwise accuracy on ``test``.

    1. Every distinct text (contexts, chosen and rejected replies, of both sets) goes through the frozen encoder
       once: unit embeddings, or with ``num_layers_unfrozen=k`` the token states entering the top ``k`` layers.
    2. ``epochs`` passes over the training pairs in shuffled minibatches of ``batch_size`` pairs; AdamW with
       ``lr`` on the head and ``backbone_lr`` on the unfrozen layers.
    3. Held-out accuracy and loss (overall and by ``meta["rejected_kind"]``), training accuracy, and the raw
       score's mean and std over the training replies (for normalising the reward).

    Returns the model (in eval mode, on ``device``) and its config with ``training`` and ``metrics`` filled in.
    """
    from tqdm.auto import tqdm

    _check_args(train, test, epochs, batch_size)
    t0 = time.time()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    encoder = TextEncoder(backbone, num_layers_unfrozen, max_length)
    cfg = RewardModelConfig(backbone=backbone, num_layers_unfrozen=num_layers_unfrozen, context_turns=context_turns,
                            max_length=max_length, hidden=hidden, dropout=dropout,
                            embedding_dim=encoder.hidden_size)
    model = RewardModel(cfg, encoder).to(device)
    encoder.check_split()

    # 1. encode every distinct text once: (U, D) embeddings when frozen, else (T_i, D) token states per text
    index: dict[tuple[str, str], int] = {}
    tr_idx, te_idx = _texts_of(train, context_turns, index), _texts_of(test, context_turns, index)
    keys = list(index)
    frozen = num_layers_unfrozen == 0
    cached: list[Any] = [None] * len(keys)
    bar = tqdm(total=len(keys), desc="embedding", unit="text", disable=not progress, dynamic_ncols=True)
    for side in ("left", "right"):  # contexts (truncated from the left), then replies; batches of similar length
        ids = sorted((i for i, k in enumerate(keys) if k[0] == side), key=lambda i: len(keys[i][1]))
        for s in range(0, len(ids), 64):
            group = ids[s:s + 64]
            texts = [keys[i][1] for i in group]
            if frozen:
                with torch.no_grad():
                    for i, e in zip(group, encoder(texts, side=side).float()):
                        cached[i] = e
            else:
                for i, states in zip(group, encoder.trunk_states(texts, side=side)):
                    cached[i] = states
            bar.update(len(group))
    bar.close()
    t_embed = time.time() - t0
    table = torch.stack(cached) if frozen else None  # (U, D)

    def embed(ids: np.ndarray) -> tuple[torch.Tensor, dict[int, int]]:
        uniq = list(dict.fromkeys(ids.reshape(-1).tolist()))
        if frozen:
            return table[uniq], {u: j for j, u in enumerate(uniq)}
        return encoder.top([cached[u] for u in uniq]), {u: j for j, u in enumerate(uniq)}

    def pair_scores(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        e, pos = embed(rows)  # (U_batch, D)
        c = e[[pos[u] for u in rows[:, 0]]]
        a = e[[pos[u] for u in rows[:, 1]]]
        b = e[[pos[u] for u in rows[:, 2]]]
        return model(c, a), model(c, b)  # (N,), (N,)

    def evaluate(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _scores(model, pair_scores, rows, 64)

    # 2. Bradley-Terry training, 3. metrics and score statistics
    _fit_and_measure(model, cfg, pair_scores, evaluate, tr_idx, te_idx, train, test, encoder.top_layers, epochs=epochs,
                     batch_size=batch_size, lr=lr, backbone_lr=backbone_lr, weight_decay=weight_decay, seed=seed,
                     device=device, gen=gen, progress=progress, data_source=data_source, test_source=test_source,
                     t0=t0, t_embed=t_embed)
    return model, cfg


@torch.no_grad()
def _scores(model: nn.Module, pair_scores: Any, rows: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(chosen, rejected) float64 scores of the pair ``rows`` in eval mode, ``batch`` pairs at a time."""
    model.eval()
    out_a, out_b = [], []
    for s in range(0, len(rows), batch):
        a, b = pair_scores(rows[s:s + batch])
        out_a.append(a.double().cpu())
        out_b.append(b.double().cpu())
    return torch.cat(out_a).numpy(), torch.cat(out_b).numpy()


def _fit(pair_scores: Any, rows: np.ndarray, head_modules: list, head_params: list, top_modules: list,
         top_params: list, *, epochs: int, batch_size: int, lr: float, backbone_lr: float, weight_decay: float,
         gen: torch.Generator, progress: bool) -> float:
    """``epochs`` passes of Bradley-Terry minibatch training over the pair ``rows`` (shuffled with ``gen``);
    ``pair_scores(rows) -> (chosen scores, rejected scores)``. AdamW, ``lr`` on the head, ``backbone_lr`` on the
    unfrozen backbone layers. Returns the last epoch's mean loss."""
    from tqdm.auto import tqdm

    groups = [{"params": head_params, "lr": lr}]
    if top_params:
        groups.append({"params": top_params, "lr": backbone_lr})
    opt = torch.optim.AdamW(groups, weight_decay=weight_decay)
    N = len(rows)
    bar = tqdm(range(epochs), desc="reward model", unit="epoch", disable=not progress, dynamic_ncols=True)
    epoch_loss = math.nan
    for _ in bar:
        for m in head_modules + top_modules:
            m.train()
        perm = torch.randperm(N, generator=gen).numpy()
        total = 0.0
        for s in range(0, N, batch_size):
            batch = rows[perm[s:s + batch_size]]
            a, b = pair_scores(batch)
            loss = bradley_terry_loss(a, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        epoch_loss = total / N
        bar.set_postfix(loss=f"{epoch_loss:.4f}")
    bar.close()
    for m in head_modules + top_modules:
        m.eval()
    return epoch_loss


def _fit_and_measure(model: nn.Module, cfg: RewardModelConfig, pair_scores: Any, evaluate: Any, tr_idx: np.ndarray,
                     te_idx: np.ndarray, train: Sequence[Any], test: Sequence[Any], top_modules: list, *, epochs: int,
                     batch_size: int, lr: float, backbone_lr: float, weight_decay: float, seed: int, device: Any,
                     gen: torch.Generator, progress: bool, data_source: str, test_source: str, t0: float,
                     t_embed: float) -> None:
    """Train ``model`` (its head and ``top_modules``) with :func:`_fit`, then fill ``cfg``'s metrics, score
    statistics and ``training`` record."""
    top_params = [p for m in top_modules for p in m.parameters()]
    epoch_loss = _fit(pair_scores, tr_idx, [model.head], list(model.head.parameters()), top_modules, top_params,
                      epochs=epochs, batch_size=batch_size, lr=lr, backbone_lr=backbone_lr,
                      weight_decay=weight_decay, gen=gen, progress=progress)
    model.eval()
    _finish(cfg, evaluate, tr_idx, te_idx, train, test, epoch_loss)
    cfg.training = _record(train, test, data_source, test_source, epochs=epochs, batch_size=batch_size, lr=lr,
                           backbone_lr=backbone_lr if top_params else None, weight_decay=weight_decay, seed=seed,
                           device=str(device), embedding_seconds=round(t_embed, 2), seconds=round(time.time() - t0, 2))


def _finish(cfg: RewardModelConfig, evaluate: Any, tr_idx: np.ndarray, te_idx: np.ndarray, train: Sequence[Any],
            test: Sequence[Any], epoch_loss: float) -> None:
    """Fill ``cfg.metrics`` (held-out accuracy overall and by ``meta["rejected_kind"]``, losses, training accuracy)
    and the raw score's mean and std over the training replies (``cfg.score_mean`` / ``score_std``)."""
    tr_a, tr_b = evaluate(tr_idx)
    te_a, te_b = evaluate(te_idx)
    train_scores = np.concatenate([tr_a, tr_b])
    cfg.score_mean = float(train_scores.mean())
    cfg.score_std = float(train_scores.std()) or 1.0
    kinds = [(p.meta or {}).get("rejected_kind") for p in test]
    te_loss = float(bradley_terry_loss(torch.from_numpy(te_a), torch.from_numpy(te_b)))
    correct = int(np.sum(te_a > te_b))
    cfg.metrics = {
        "accuracy": correct / len(test), "correct": correct, "n_test": len(test), "test_loss": te_loss,
        "accuracy_by_kind": accuracy_by_kind(kinds, te_a, te_b),
        "train_accuracy": pairwise_accuracy(tr_a, tr_b), "train_loss": float(bradley_terry_loss(
            torch.from_numpy(tr_a), torch.from_numpy(tr_b))), "final_epoch_loss": epoch_loss,
    }


def _record(train: Sequence[Any], test: Sequence[Any], data_source: str, test_source: str, **how: Any) -> dict:
    """The config's ``training`` record: the data (sources, sha256, counts), ``how`` it was trained, torch."""
    return {"data": data_source, "data_sha256": data_hash(train), "n_train": len(train), "test": test_source,
            "test_sha256": data_hash(test), "n_test": len(test), **how, "torch": torch.__version__}


def _check_args(train: Sequence[Any], test: Sequence[Any], epochs: int, batch_size: int) -> None:
    if len(train) < 1:
        raise ValueError("train_reward_model: no training pairs")
    if len(test) < 1:
        raise ValueError("train_reward_model: no held-out pairs to measure accuracy on (pass test pairs)")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs={epochs} and batch_size={batch_size} must be >= 1")


# ------------------------------------------------------------------------------------------------ LM backbone
def train_lm_reward_model(train: Sequence[Any], test: Sequence[Any], *, backbone: str = "smollm2-135m",
                          epochs: int = 3, batch_size: int = 16, lr: float = 1e-3, backbone_lr: float = 2e-5,
                          weight_decay: float = 0.01, hidden: int = 0, dropout: float = 0.0,
                          num_layers_unfrozen: int = 2, context_turns: int = 3, max_length: int = 384, seed: int = 0,
                          device: str = "cpu", progress: bool = True, data_source: str = "",
                          test_source: str = "") -> tuple[Any, RewardModelConfig]:
    """Fit an LM reward model (:class:`rewards.learned_lm.LMRewardModel`: causal LM + scalar head on the last token)
    to preference pairs with the Bradley–Terry loss; evaluate pairwise accuracy on ``test``.

    1. Every distinct chat text (context + chosen, context + rejected, of both sets) goes through the frozen trunk
       once (the decoder's lower ``n - k`` layers), in batches of similar length; its states are kept.
    2. ``epochs`` passes over the training pairs: each minibatch runs the top ``num_layers_unfrozen`` layers (and
       the final norm) on the kept states, then the head on the last token; AdamW with ``lr`` on the head and
       ``backbone_lr`` on the top layers. ``num_layers_unfrozen=0`` trains the head alone.
    3. Held-out accuracy and loss (overall and by ``meta["rejected_kind"]``), training accuracy, and the raw
       score's mean and std over the training replies.

    Returns the model (eval mode, on ``device``) and its config (``kind="lm"``) with ``training`` and ``metrics``.
    """
    from tqdm.auto import tqdm

    from .learned_lm import LMBackbone, LMRewardModel, chat_text

    _check_args(train, test, epochs, batch_size)
    t0 = time.time()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    lm = LMBackbone(backbone, num_layers_unfrozen, max_length)
    cfg = RewardModelConfig(kind="lm", backbone=backbone, num_layers_unfrozen=num_layers_unfrozen,
                            context_turns=context_turns, max_length=max_length, hidden=hidden, dropout=dropout,
                            embedding_dim=lm.hidden_size)
    model = LMRewardModel(cfg, lm).to(device)
    lm.check_split()

    # 1. the trunk's states of every distinct text, once
    index: dict[str, int] = {}

    def rows_of(pairs: Sequence[Any]) -> np.ndarray:
        rows = [[index.setdefault(chat_text(p.context, y, context_turns), len(index)) for y in (p.chosen, p.rejected)]
                for p in pairs]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 2)

    tr_idx, te_idx = rows_of(train), rows_of(test)
    ids = lm.encode(list(index))
    cached: list[Any] = [None] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    bar = tqdm(total=len(ids), desc="LM trunk", unit="text", disable=not progress, dynamic_ncols=True)
    step = max(1, min(32, 4096 // max(len(ids[order[-1]]), 1)))  # about 4k tokens per batch
    for s in range(0, len(order), step):
        group = order[s:s + step]
        for i, state in zip(group, lm.trunk_states([ids[i] for i in group])):
            cached[i] = state
        bar.update(len(group))
    bar.close()
    t_trunk = time.time() - t0

    def pair_scores(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        uniq = list(dict.fromkeys(rows.reshape(-1).tolist()))
        pos = {u: j for j, u in enumerate(uniq)}
        s = model(lm.top([cached[u] for u in uniq]))  # (U,)
        return s[[pos[u] for u in rows[:, 0]]], s[[pos[u] for u in rows[:, 1]]]

    def evaluate(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _scores(model, pair_scores, rows, 16)

    # 2. Bradley-Terry training, 3. metrics and score statistics
    _fit_and_measure(model, cfg, pair_scores, evaluate, tr_idx, te_idx, train, test, lm.top_modules, epochs=epochs,
                     batch_size=batch_size, lr=lr, backbone_lr=backbone_lr, weight_decay=weight_decay, seed=seed,
                     device=device, gen=gen, progress=progress, data_source=data_source, test_source=test_source,
                     t0=t0, t_embed=t_trunk)
    return model, cfg

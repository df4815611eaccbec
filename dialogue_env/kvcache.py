"""Every KV-cache manipulation of the project, in one place: one cached LM forward, and a decoder that keeps ``N``
rows of a causal LM in one batched cache.

The rollout collector (``agents.collect``) and the reference LM of ``DialogueTopK-v0`` both decode through
:class:`CachedDecoder`, so the cache code is written and tested once:

- reordering / repeating rows goes through transformers' public ``Cache.reorder_cache``;
- splicing newly encoded rows into a batched cache and dropping leading columns that no row uses (left-trim) need
  the per-layer ``keys`` / ``values`` tensors of a ``DynamicCache`` (transformers 4.56 and later, 5.x included).
  :func:`cache_layers` checks for them and fails with a clear error on a version or model that has none.

Nothing is stored on the user's model object: which keyword a model takes for its cache (``cache`` in newer
transformers, ``past_key_values`` before) is remembered per model *class*.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import torch
import torch.nn.functional as F


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: 0 at each row's first real token, counting up; 0 on padding.
    ``mask`` (B, S) -> (B, S) long."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


@functools.lru_cache(maxsize=64)
def _cache_kwarg(model_class: type) -> str:
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def lm_step(model, input_ids, cache=None, **kwargs):
    """One causal-LM forward that reuses and returns the KV cache, across transformers versions.
    Returns ``(model output, cache)``."""
    name = _cache_kwarg(type(model))
    out = model(input_ids=input_ids, use_cache=True, **{name: cache}, **kwargs)
    return out, (out["cache"] if "cache" in out else out["past_key_values"])


def cache_layers(cache) -> list:
    """The per-layer key/value holders of a ``DynamicCache`` (``layer.keys`` / ``layer.values``: (B, heads, S, d)).
    Splicing and left-trimming need them; anything else is a clear error."""
    layers = getattr(cache, "layers", None)
    if layers is None or not all(hasattr(layer, "keys") and hasattr(layer, "values") for layer in layers):
        import transformers

        raise NotImplementedError(
            f"dialogue-rl splices rows of a transformers DynamicCache through its per-layer keys/values, which "
            f"transformers {transformers.__version__} does not expose on {type(cache).__name__}; install "
            f"transformers>=4.56 (pip install -U 'transformers>=4.56')")
    if any(getattr(layer, "is_sliding", False) for layer in layers):
        raise NotImplementedError("models with sliding-window attention layers are not supported by the batched "
                                  "KV cache (its rows are spliced and trimmed on a shared time axis)")
    return list(layers)


def reorder_rows(cache, index: torch.Tensor) -> None:
    """Row ``r`` of the cache becomes old row ``index[r]`` (``index`` may repeat rows or change the batch size):
    transformers' public ``Cache.reorder_cache``."""
    cache.reorder_cache(index)


def left_trim(cache, n: int) -> None:
    """Drop the first ``n`` time columns of every layer (columns that no row attends to)."""
    if n <= 0:
        return
    for layer in cache_layers(cache):
        layer.keys, layer.values = layer.keys[:, :, n:], layer.values[:, :, n:]


def splice_rows(cache, length: int, rows: torch.Tensor, new_cache, new_length: int) -> int:
    """Put the ``M`` rows of ``new_cache`` (time length ``new_length``) into ``rows`` of ``cache`` (length
    ``length``), both right-aligned on a common time axis of ``max(length, new_length)`` columns (the shorter one is
    padded on the left). Returns the new length; the caller pads its key mask the same way."""
    total = max(length, new_length)
    for old, new in zip(cache_layers(cache), cache_layers(new_cache)):
        for attr in ("keys", "values"):
            a = F.pad(getattr(old, attr), (0, 0, total - length, 0))  # (N, h, total, d)
            a[rows] = F.pad(getattr(new, attr), (0, 0, total - new_length, 0))  # (M, h, total, d)
            setattr(old, attr, a)
    return total


class CachedDecoder:
    """``N`` rows of a causal LM decoded together with one batched KV cache.

    Rows are right-aligned on a common time axis with a key mask ``kv_mask`` (N, S). ``prefill`` encodes new contexts
    for some rows (all rows: a fresh cache; some rows: encoded on their own and spliced in, the others keep their
    cache); ``advance`` feeds one token per row (rows that do not advance get a masked column). Leading columns that no
    row uses are trimmed, so ``S`` stays about the longest row. Positions are tracked per row, so rotary embeddings see
    each row's true positions whatever its alignment.

    ``hidden_layer``: also return ``hidden_states[hidden_layer]`` of the positions fed (None: no hidden states).
    Both methods return ``(logits, hidden)``: next-token logits ``(M, V)`` of the rows fed and their hidden states
    ``(M, S_fed, H)`` or None. ``prefill(..., share=True)`` encodes each distinct row once and copies its cache, logits
    and hidden states to every row that holds it (several samples of one context).
    """

    def __init__(self, lm, num_rows: int, hidden_layer: int | None = None):
        self.lm = lm
        self.N = int(num_rows)
        self.hidden_layer = hidden_layer
        self.device = next(lm.parameters()).device
        self.cache = None
        self.kv_mask = torch.zeros((self.N, 0), dtype=torch.long, device=self.device)  # (N, S)
        self.pos = torch.zeros(self.N, dtype=torch.long, device=self.device)  # (N,) next position id per row

    def _forward(self, ids, cache, **kwargs):
        extra = {"output_hidden_states": True} if self.hidden_layer is not None else {}
        out, cache = lm_step(self.lm, ids, cache, logits_to_keep=1, **extra, **kwargs)
        hidden = out.hidden_states[self.hidden_layer] if self.hidden_layer is not None else None
        return out.logits[:, -1], hidden, cache

    @torch.no_grad()
    def prefill(self, rows, ids: torch.Tensor, mask: torch.Tensor, share: bool = False):
        """Encode new left-padded contexts ``ids``/``mask`` (M, Sn) for ``rows`` (M,); replaces those rows' cache."""
        rows = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.device)
        ids, mask = ids.to(self.device), mask.to(self.device).long()
        keep = int(mask.sum(1).max())
        ids, mask = ids[:, -keep:], mask[:, -keep:]  # drop columns that are padding in every row
        inverse = None
        if share:
            uniq, inverse = torch.unique(torch.cat([ids, mask], dim=1), dim=0, return_inverse=True)  # (U, 2 Sn)
            if len(uniq) < len(ids):
                ids, mask = uniq[:, :keep], uniq[:, keep:]
            else:
                inverse = None
        logits, hidden, new_cache = self._forward(ids, None, attention_mask=mask, position_ids=position_ids(mask))
        if inverse is not None:  # (U, ...) -> (M, ...): every row gets its context's cache, logits and states
            reorder_rows(new_cache, inverse)
            logits, mask = logits[inverse], mask[inverse]
            hidden = hidden[inverse] if hidden is not None else None
        self.pos[rows] = mask.sum(1)
        if rows.numel() == self.N and torch.equal(torch.sort(rows).values, torch.arange(self.N, device=self.device)):
            order = torch.argsort(rows)  # row r of the batch is new_cache[order[r]]
            if not torch.equal(order, torch.arange(self.N, device=self.device)):
                reorder_rows(new_cache, order)
            self.cache, self.kv_mask = new_cache, mask[order]
            return logits, hidden
        if self.cache is None:
            raise RuntimeError("the first prefill must encode every row (reset all envs before a partial reset)")
        S, Sn = self.kv_mask.shape[1], mask.shape[1]
        total = splice_rows(self.cache, S, rows, new_cache, Sn)
        kv_mask = F.pad(self.kv_mask, (total - S, 0))
        kv_mask[rows] = F.pad(mask, (total - Sn, 0))
        self.kv_mask = kv_mask
        self._trim()
        return logits, hidden

    @torch.no_grad()
    def advance(self, tokens: torch.Tensor, active: torch.Tensor):
        """Feed ``tokens[i]`` (N,) to every row; rows where ``active[i]`` is False get a masked column (their
        outputs are meaningless). Returns next-token logits (N, V) and hidden states (N, 1, H) or None."""
        tokens = tokens.to(self.device).long().reshape(self.N, 1)  # (N, 1)
        active = active.to(self.device).bool()
        attn = torch.cat([self.kv_mask, active.long().unsqueeze(1)], dim=1)  # (N, S + 1)
        logits, hidden, self.cache = self._forward(tokens, self.cache, attention_mask=attn,
                                                   position_ids=self.pos.unsqueeze(1))
        self.kv_mask = attn
        self.pos = self.pos + active.long()
        self._trim()
        return logits, hidden

    def _trim(self) -> None:
        used = torch.nonzero(self.kv_mask.any(0)).flatten()
        first = int(used[0]) if used.numel() else self.kv_mask.shape[1]
        if first:
            left_trim(self.cache, first)
            self.kv_mask = self.kv_mask[:, first:]


@torch.no_grad()
def sample_replies(lm, ids: torch.Tensor, mask: torch.Tensor, *, max_new_tokens: int, eos_ids, generators,
                   temperature: float = 1.0, greedy: bool = False, share: bool = False) -> list[list[int]]:
    """Sample a reply after each of ``M`` left-padded contexts ``ids`` / ``mask`` (M, S) with one batched KV cache:
    ``softmax(logits / temperature)`` (argmax with ``greedy``) until an end-of-reply token in ``eos_ids`` (kept, last)
    or ``max_new_tokens`` tokens. ``generators``: one ``torch.Generator`` per row (the same object may serve several
    rows: they draw from it in row order); a row that has ended draws nothing more, so its draws do not depend on the
    other rows of the batch. ``share``: encode identical contexts once. Returns ``M`` token lists."""
    M = len(ids)
    decoder = CachedDecoder(lm, M)
    logits, _ = decoder.prefill(np.arange(M), ids, mask, share=share)
    eos = torch.as_tensor(sorted(eos_ids), dtype=torch.long)
    out: list[list[int]] = [[] for _ in range(M)]
    done = torch.zeros(M, dtype=torch.bool)
    for t in range(max_new_tokens):
        logits = logits.float().cpu()  # (M, V)
        tokens = torch.zeros(M, dtype=torch.long)
        if greedy:
            tokens = torch.where(done, tokens, logits.argmax(-1))
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            for j in torch.nonzero(~done).flatten().tolist():
                tokens[j] = torch.multinomial(probs[j], 1, generator=generators[j])[0]
        for j in torch.nonzero(~done).flatten().tolist():
            out[j].append(int(tokens[j]))
        done = done | torch.isin(tokens, eos)
        if bool(done.all()) or t + 1 == max_new_tokens:
            break
        logits, _ = decoder.advance(tokens, ~done)
    return out


__all__ = ["CachedDecoder", "cache_layers", "left_trim", "lm_step", "position_ids", "reorder_rows", "sample_replies",
           "splice_rows"]

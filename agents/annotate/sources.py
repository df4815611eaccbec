"""Where the pairs to label come from: a candidates JSONL file, or replies sampled from language models.

Candidates JSONL (one JSON object per line, UTF-8; blank lines are ignored)::

    {"id": "cand-0001",                                   # optional string, kept in the pair's meta
     "context": [{"role": "user", "content": "..."}],     # chat history, or a plain string = one user turn
     "replies": ["first candidate", "second candidate"],  # two or more different, non-empty replies;
                                                          # every pair of them is shown (k replies: k(k-1)/2 pairs)
     "reference": "a known-good reply",                   # optional: the safe fallback for "both unsafe"
     "meta": {...}}                                       # optional, anything JSON

A preference line (``"chosen"`` and ``"rejected"`` instead of ``"replies"``) is accepted too, so a preference file
(e.g. ``rewards/data/preferences/test.jsonl``) can be relabelled; which reply was "chosen" is kept in the pair's
hidden origins, never shown. A bad line raises :class:`CandidateError` naming the file, the line and the fix.

The A/B side of each reply is decided by the store from a hash of the pair, not by the order in the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from rewards.jsonl import DatasetError, _fail, _read_jsonl, _validate_messages


class CandidateError(DatasetError):
    """A candidates file or line is malformed; the message names the file, the line, the problem and the fix."""


@dataclass(frozen=True)
class CandidatePair:
    """Two replies to one context, before the store assigns them to sides A and B.

    ``origins`` says where each reply came from (e.g. ``"policy sample 1"``, ``"reference model"``, ``"replies[0]"``);
    it is stored and exported, never shown to the annotator. ``reference`` is a known-good reply to the same context
    (the dataset's), used only as the safe fallback when both replies are judged unsafe.
    """

    context: tuple  # chat messages [{"role", "content"}, ...]
    replies: tuple  # (reply_1, reply_2), two different non-empty strings
    origins: tuple = ("reply 1", "reply 2")
    reference: str | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)


def _as_error(err: DatasetError) -> CandidateError:
    return CandidateError(str(err))


def load_candidates(path) -> list[CandidatePair]:
    """Read and validate a candidates JSONL file (format in the module docstring); one :class:`CandidatePair` per
    pair of different replies of each line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CandidateError(f"{path}: no such file (pass a candidates JSONL file to --candidates; the format is in "
                             f"'python -m pydoc agents.annotate.sources')")
    source = f"candidates:{path.name}"
    pairs: list[CandidatePair] = []
    try:
        for lineno, obj in _read_jsonl(path):
            pairs += _pairs_of_line(obj, path, lineno, source)
    except CandidateError:
        raise
    except DatasetError as err:
        raise _as_error(err) from None
    if not pairs:
        raise CandidateError(f"{path}: the file holds no candidate lines (one JSON object per line with 'context' and "
                             f"'replies')")
    return pairs


def _pairs_of_line(obj: dict, path: Path, lineno: int, source: str) -> list[CandidatePair]:
    context = obj.get("context")
    if isinstance(context, str):
        context = [{"role": "user", "content": context}]
    if context is None:
        raise _as_error(_fail(path, lineno, "missing 'context'",
                              'add "context": [{"role": "user", "content": "..."}] or "context": "a user message"'))
    context = _validate_messages(context, path, lineno, what="context")
    if "replies" in obj:
        replies = obj["replies"]
        if not isinstance(replies, list):
            raise _as_error(_fail(path, lineno, f"'replies' must be a list of strings, got {type(replies).__name__}",
                                  'write "replies": ["first reply", "second reply"]'))
        origins = [f"replies[{i}]" for i in range(len(replies))]
    elif "chosen" in obj or "rejected" in obj:
        replies = [obj.get("chosen"), obj.get("rejected")]
        origins = ["chosen", "rejected"]
    else:
        raise _as_error(_fail(path, lineno, "missing 'replies'",
                              'add "replies": ["first reply", "second reply"] (or "chosen" and "rejected")'))
    for i, reply in enumerate(replies):
        if not isinstance(reply, str) or not reply.strip():
            raise _as_error(_fail(path, lineno, f"{origins[i]} must be a non-empty string, got {reply!r}",
                                  "every candidate reply needs some text"))
    seen: dict[str, int] = {}
    for i, reply in enumerate(replies):
        if reply.strip() in seen:
            raise _as_error(_fail(path, lineno, f"{origins[i]} repeats {origins[seen[reply.strip()]]}",
                                  "a pair needs two different replies; drop the duplicate"))
        seen[reply.strip()] = i
    if len(replies) < 2:
        raise _as_error(_fail(path, lineno, f"'replies' holds {len(replies)} reply",
                              "give at least two candidate replies to compare"))
    reference = obj.get("reference")
    if reference is not None and (not isinstance(reference, str) or not reference.strip()):
        raise _as_error(_fail(path, lineno, "'reference' must be a non-empty string when present"))
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise _as_error(_fail(path, lineno, f"'meta' must be an object, got {type(meta).__name__}"))
    line_id = obj.get("id")
    if line_id is not None and not isinstance(line_id, str):
        raise _as_error(_fail(path, lineno, f"'id' must be a string, got {type(line_id).__name__}"))
    meta = {**meta, "line": lineno, **({"candidate_id": line_id} if line_id else {})}
    return [CandidatePair(context=context, replies=(replies[i], replies[j]), origins=(origins[i], origins[j]),
                          reference=reference, source=source, meta=meta)
            for i, j in combinations(range(len(replies)), 2)]


# ------------------------------------------------------------------------------------------------ model samples
def model_source_key(model: str, against: str | None, dataset: str, split: str, pairs: int, seed: int,
                     max_new_tokens: int, temperature: float) -> str:
    """The identity of a sampling run: the server samples again only for settings the database has not seen."""
    return "model:" + json.dumps({"model": model, "against": against, "dataset": dataset, "split": split,
                                  "pairs": pairs, "seed": seed, "max_new_tokens": max_new_tokens,
                                  "temperature": temperature}, sort_keys=True)


def sample_model_pairs(model: str = "smollm2-135m", *, against: str | None = None, dataset: str = "customer_service",
                       split: str = "train", pairs: int = 20, seed: int = 0, max_new_tokens: int = 48,
                       temperature: float = 0.9, batch_size: int = 16, device: str = "cpu",
                       progress: bool = True) -> tuple[list[CandidatePair], int]:
    """Sample two replies for each of ``pairs`` dialogues of ``dataset``/``split`` (drawn without replacement with
    ``seed``), each written token by token through ``Dialogue-v0``'s batched env.

    ``against=None``: both replies are independent samples of ``model`` (at ``temperature``). ``against="reference"``:
    the second reply comes from the reference model, the ``base_model`` of a training checkpoint (for a plain model
    name that is the model itself). Any other ``against`` names a second model (it may use another tokenizer: each
    model gets its own env over the same dialogues).

    Returns ``(pairs, skipped)``: pairs whose two replies are equal or empty after stripping are skipped (a tiny or
    near-greedy model can write the same reply twice), and counted.
    """
    import gymnasium as gym
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    import dialogue_env  # noqa: F401  (registers the env ids)
    from agents.collect import collect
    from agents.evaluate import resolve_reference
    from dialogue_env.data import load_dataset
    from dialogue_env.models import load_policy

    if pairs < 1:
        raise ValueError(f"pairs={pairs} must be at least 1")
    second = None
    if against is not None:
        second = resolve_reference(model, "auto") if against == "reference" else str(against)
    dialogues = load_dataset(dataset, split)
    n = min(int(pairs), len(dialogues))
    rng = np.random.default_rng(seed)
    picked = rng.permutation(len(dialogues))[:n]  # (n,) dialogue indices
    lm_a, _ = load_policy(model, device=device)
    lm_b = lm_a if second is None or second == model else load_policy(second, device=device)[0]
    B = min(int(batch_size), n)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))

    same = lm_b is lm_a

    def make_env(name, num_envs):
        # reward "length": the env must score every reply, and this is the cheapest scorer (no model to load).
        return gym.make_vec("dialogue_env/Dialogue-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                            model=name, dataset=dataset, split=split, reward="length", return_tensors=True,
                            max_new_tokens=max_new_tokens, device=device)

    # One model: both samples in one rollout of 2B sub-envs (rows i and B + i answer the same dialogue).
    env_a = make_env(model, 2 * B if same else B)
    env_b = env_a if same else make_env(second, B)
    origin_a = f"{model} sample 1" if same else model
    origin_b = f"{model} sample 2" if same else f"{second} ({'reference' if against == 'reference' else 'B'})"
    source = f"model:{model}" + (" x2" if same else f" vs {second}")
    out: list[CandidatePair] = []
    skipped = 0
    bar = tqdm(total=n, desc="sampling pairs", unit="pair", disable=not progress, dynamic_ncols=True)
    threads = torch.get_num_threads()
    if device == "cpu" and max(_n_params(lm_a), _n_params(lm_b)) < 5_000_000:
        # A tiny model (tiny-random: 0.1 M parameters) decodes faster on one thread: its matrices are so small that
        # intra-op threads only add synchronisation (measured 1-8 s instead of 10-17 s for 20 pairs on a busy 2-core
        # machine).
        torch.set_num_threads(1)
    try:
        for lo in range(0, n, B):
            chunk = [int(i) for i in picked[lo:lo + B]]
            keep = len(chunk)
            padded = chunk + [chunk[j % keep] for j in range(B - keep)]
            if same:
                ra = collect(env_a, lm_a, temperature=temperature, generator=gen,
                                          dialogue_indices=padded + padded)
                replies_b = ra.responses[B:]
            else:
                ra = collect(env_a, lm_a, temperature=temperature, generator=gen, dialogue_indices=padded)
                rb = collect(env_b, lm_b, temperature=temperature, generator=gen, dialogue_indices=padded)
                replies_b = rb.responses
            for i in range(keep):
                a, b = ra.responses[i], replies_b[i]
                if not a.strip() or not b.strip() or a.strip() == b.strip():
                    skipped += 1
                    continue
                meta = {"dialogue_id": ra.dialogue_ids[i], "dataset": str(dataset), "split": split, "seed": seed}
                out.append(CandidatePair(context=tuple(dict(m) for m in ra.contexts[i]), replies=(a, b),
                                         origins=(origin_a, origin_b), reference=ra.references[i], source=source,
                                         meta=meta))
            bar.update(keep)
    finally:
        torch.set_num_threads(threads)
        bar.close()
        env_a.close()
        if not same:
            env_b.close()
    return out, skipped


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())

"""Evaluate a dialogue policy: one reply per dialogue of a split, scored exactly as the environment scores it.

``dialogue-rl evaluate --policy P --dataset D [--split test] [--filter ethics] --out results/eval.json`` writes

- ``results/eval.json``: the summary -- ``n``; ``reward`` (mean of the env's reward), ``reward_std`` (population std
  over dialogues), ``reward_ci95`` (``1.96 * std / sqrt(n)``); each reward component's mean, in ``components`` and
  flattened as ``reward/<name>``; ``kl`` and ``perplexity`` against the reference model; ``distinct_1``,
  ``distinct_2``; ``mean_length`` (words) and ``mean_tokens``; ``ethics_violation_rate`` (and, with a filter,
  ``ethics_violation_rate_before`` / ``_after`` and ``n_replaced``); and the run's settings.
- ``results/eval.jsonl``: one row per dialogue with its context, reference, reply and scores.

Every reply is generated through ``DialogueVectorEnv`` with :func:`agents.rollout.generate_through_env`, so the
reward is the env's own, computed on the decoded reply the env saw. The metrics::

    kl_i        = sum_t [log pi(a_t | s_t) - log pi_ref(a_t | s_t)]     over the reply tokens of dialogue i (EOS
                                                                       included), raw logits (temperature 1)
    kl          = mean_i kl_i
    perplexity  = exp( sum_i sum_t -log pi_ref(a_t | s_t) / sum_i T_i ) over all reply tokens of all dialogues
    distinct_n  = |unique word n-grams| / |word n-grams|                over all replies (lower-cased, split on
                                                                       whitespace)

Reward, distinct-n and lengths describe what the policy wrote (the env scored the unfiltered reply); the ethics
filter, when asked, replaces unsafe replies in the rows' ``reply`` and is reported by the violation rates after it.

The reference is, with ``reference="auto"``, the ``base_model`` named in a training checkpoint's
``dialogue_rl.json``, else the policy itself (then ``kl == 0`` and the perplexity is the policy's own).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.ppo.functional import logprobs_from_logits
from agents.rollout import Rollout, generate_through_env
from dialogue_env.models import position_ids
from rewards.utils import atomic_write_text

__all__ = [
    "CHECKPOINT_META",
    "apply_ethics",
    "checkpoint_meta",
    "distinct_n",
    "evaluate_policy",
    "format_table",
    "main",
    "resolve_reference",
    "sequence_logprobs",
    "summarize",
    "write_outputs",
]

CHECKPOINT_META = "dialogue_rl.json"  # written by the trainer into every checkpoint dir; {"base_model": name, ...}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


# ------------------------------------------------------------------------------------------------ model names
def checkpoint_meta(policy: Any) -> dict:
    """The contents of ``<policy>/dialogue_rl.json`` when ``policy`` is a directory holding one, else ``{}``."""
    if not isinstance(policy, (str, os.PathLike)):
        return {}
    path = Path(policy) / CHECKPOINT_META
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); a checkpoint's {CHECKPOINT_META} must hold at least "
                         f'{{"base_model": "<model name>"}}') from err
    if not isinstance(meta, dict):
        raise ValueError(f"{path} must hold a JSON object such as {{\"base_model\": \"smollm2-135m\"}}, got {meta!r}")
    return meta


def _tokenizer_name(policy: str) -> str:
    """The name ``load_tokenizer`` understands for ``policy``: the policy itself, or for a checkpoint dir without
    tokenizer files the checkpoint's ``base_model``."""
    path = Path(policy)
    if path.is_dir() and not any((path / f).is_file() for f in _TOKENIZER_FILES):
        base = checkpoint_meta(policy).get("base_model")
        if base:
            return str(base)
    return str(policy)


def _load_lm(name: str, device):
    """``load_policy(name)``'s model. A checkpoint dir without tokenizer files (``load_policy`` needs them) is
    loaded with ``AutoModelForCausalLM`` directly, the same way ``load_policy`` loads any local dir."""
    from dialogue_env.models import load_policy, resolve_dtype

    if _tokenizer_name(name) != name:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, dtype=resolve_dtype(None, device)).to(device)
        return model.eval()
    return load_policy(name, device=device)[0]


def resolve_reference(policy: str, reference: Any = "auto") -> Any:
    """The reference model's name for ``policy``: ``"auto"`` (or None) -> the checkpoint's ``base_model`` when
    ``policy`` is a checkpoint dir, else ``policy``; a string is taken as is; a loaded model is returned as is."""
    if reference is None or (isinstance(reference, str) and reference == "auto"):
        base = checkpoint_meta(policy).get("base_model")
        return str(base) if base else str(policy)
    return reference


def _model_name(model: Any) -> str:
    if isinstance(model, str):
        return model
    config = getattr(model, "config", None)
    return str(getattr(config, "_name_or_path", "") or type(model).__name__)


# ------------------------------------------------------------------------------------------------- log-probs
def _accepts(model, name: str) -> bool:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())


@torch.no_grad()
def sequence_logprobs(model, rollout: Rollout) -> torch.Tensor:
    """``log model(a_t | s_t)`` for every reply position of ``rollout``, from raw logits (temperature 1).

    One batched forward over context + reply (:meth:`Rollout.sequence`, left-padded, positions from the mask as in
    generation). The logits at positions ``Lq-1 .. Lq+T-2`` score the reply tokens; ``logits_to_keep=T`` makes
    the model compute only those, never the ``(B, Lq, V)`` context logits.
    Returns ``(B, T)`` float32 on the model's device; positions after a reply ended hold filler (mask them).
    """
    device = next(model.parameters()).device
    ids, mask = rollout.sequence()  # (B, Lq + T - 1)
    ids, mask = ids.to(device), mask.to(device).long()
    pos = position_ids(mask)
    T = rollout.response_ids.shape[1]
    kwargs = {"logits_to_keep": T} if _accepts(model, "logits_to_keep") else {}
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, **kwargs).logits
    logits = logits[:, -T:].float()  # (B, T, V): position Lq-1+t predicts reply token t
    return logprobs_from_logits(logits, rollout.response_ids.to(device))  # (B, T)


# ---------------------------------------------------------------------------------------------------- metrics
def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique word n-grams / all word n-grams over ``texts`` (lower-cased, whitespace-split); 0.0 when none."""
    total, unique = 0, set()
    for text in texts:
        words = text.lower().split()
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def rows_from_rollout(rollout: Rollout, logp: torch.Tensor, ref_logp: torch.Tensor, keep: int) -> list[dict]:
    """Per-dialogue rows for the first ``keep`` sub-envs of a chunk (the rest repeat dialogues to fill the batch)."""
    m = rollout.response_mask.to(logp.device).float()  # (B, T)
    n_tok = m.sum(1)  # (B,)
    kl = ((logp - ref_logp) * m).sum(1)  # (B,)
    nll = (-ref_logp * m).sum(1) / n_tok.clamp(min=1)  # (B,) mean NLL per reply token under the reference
    rows = []
    for i in range(keep):
        rows.append({
            "dialogue_id": rollout.dialogue_ids[i],
            "context": rollout.contexts[i],
            "reference": rollout.references[i],
            "reply": rollout.responses[i],
            "reply_raw": rollout.responses[i],
            "reward": float(rollout.scores[i]),
            "components": {k: float(v[i]) for k, v in rollout.components.items()},
            "ethics_unsafe": False,
            "ethics_reason": None,
            "kl": float(kl[i]),
            "nll": float(nll[i]),
            "n_tokens": int(n_tok[i]),
        })
    return rows


def apply_ethics(rows: list[dict], filter: Any = None, ethics: Any = None) -> dict:
    """Judge every row's ``reply_raw`` with the built-in ethics module and, with ``filter`` ("ethics" or a
    ``rewards.EthicsFilter``), replace unsafe replies. Sets each row's ``ethics_unsafe``, ``ethics_reason`` and
    ``reply``; returns the summary's ethics fields."""
    import rewards

    if filter is not None and filter != "ethics" and not isinstance(filter, rewards.EthicsFilter):
        raise ValueError(f"filter={filter!r}: use None, 'ethics' or a rewards.EthicsFilter")
    if isinstance(filter, rewards.EthicsFilter):
        ethics = filter.ethics
    ethics = ethics if ethics is not None else rewards.EthicsReward()
    contexts = [r["context"] or [] for r in rows]
    raw = [r["reply_raw"] for r in rows]
    verdicts = ethics.explain(contexts, raw)
    for row, v in zip(rows, verdicts):
        row["ethics_unsafe"] = not v["safe"]
        row["ethics_reason"] = v["reason"]
        row["reply"] = row["reply_raw"]
    n = max(len(rows), 1)
    before = sum(not v["safe"] for v in verdicts) / n
    out = {"ethics_violation_rate": before}
    if filter is None:
        return out
    flt = filter if isinstance(filter, rewards.EthicsFilter) else rewards.EthicsFilter(ethics=ethics)
    results = flt.apply(contexts, raw)
    for row, res in zip(rows, results):
        row["reply"] = res.text
    after = ethics.explain(contexts, [res.text for res in results])
    out.update({"ethics_violation_rate_before": before,
                "ethics_violation_rate_after": sum(not v["safe"] for v in after) / n,
                "n_replaced": int(sum(res.replaced for res in results))})
    return out


def summarize(rows: Sequence[Mapping], ethics_stats: Mapping | None = None, **meta: Any) -> dict:
    """The summary of evaluated rows (see the module docstring); ``meta`` (policy, dataset, ...) is appended."""
    n = len(rows)
    if n == 0:
        raise ValueError("nothing to summarise: no rows")
    r = np.asarray([row["reward"] for row in rows], dtype=np.float64)
    std = float(r.std())  # population std (ddof=0)
    names: list[str] = []
    for row in rows:
        names += [k for k in row["components"] if k not in names]
    components = {k: float(np.mean([row["components"][k] for row in rows if k in row["components"]]))
                  for k in names}
    n_tokens = np.asarray([row["n_tokens"] for row in rows], dtype=np.float64)
    nll_sum = float(sum(row["nll"] * row["n_tokens"] for row in rows))
    raw = [row["reply_raw"] for row in rows]
    summary: dict[str, Any] = {
        "n": n,
        "reward": float(r.mean()),
        "reward_std": std,
        "reward_ci95": 1.96 * std / math.sqrt(n),
        "components": components,
        **{f"reward/{k}": v for k, v in components.items()},
        "kl": float(np.mean([row["kl"] for row in rows])),
        "perplexity": float(math.exp(nll_sum / max(n_tokens.sum(), 1.0))),
        "distinct_1": distinct_n(raw, 1),
        "distinct_2": distinct_n(raw, 2),
        "mean_length": float(np.mean([len(t.split()) for t in raw])),
        "mean_tokens": float(n_tokens.mean()),
    }
    if ethics_stats is None:
        ethics_stats = {"ethics_violation_rate": float(np.mean([bool(row["ethics_unsafe"]) for row in rows]))}
    summary.update(ethics_stats)
    summary.update(meta)
    return summary


# ------------------------------------------------------------------------------------------------- evaluation
def evaluate_policy(policy, *, dataset="customer_service", split="test", reward=None, reference="auto", filter=None,
                    max_new_tokens=48, max_context_tokens=512, batch_size=25, greedy=False, temperature=0.7,
                    seed=1234, device="cpu", limit=None, lm=None, tokenizer_name=None, progress=True):
    """Generate one reply per dialogue of ``dataset``/``split`` (all, or the first ``limit``) and score them.

    Args:
        policy: a model name or path for ``dialogue_env.load_policy`` ("smollm2-135m", "tiny-random", a hub id,
            a local dir, a training checkpoint dir). With ``lm`` given, only the name of its tokenizer/vocabulary.
        reward: the env's reward spec (None = ``rewards.DEFAULT_SPEC``).
        reference: "auto" (a checkpoint's ``base_model``, else ``policy``), a model name/path, or a loaded model.
            With ``lm`` given, a reference named like ``policy`` is loaded from that name, so the KL measures how
            far ``lm`` moved from those weights; pass ``reference=lm`` for a self-reference.
        filter: None, "ethics" or a ``rewards.EthicsFilter``: replace unsafe replies after generation.
        batch_size: sub-envs per chunk; the last chunk is padded by repeating dialogues (the extras are dropped).
        greedy / temperature / seed: decoding; sampling uses a ``torch.Generator`` seeded with ``seed``.
        tokenizer_name: the env's ``model=`` (default: ``policy``, or a checkpoint's ``base_model`` when the
            checkpoint dir has no tokenizer files).

    Returns:
        ``(summary, rows)``: see the module docstring and :func:`write_outputs`.
    """
    import gymnasium as gym
    from tqdm.auto import tqdm

    import dialogue_env

    start_time = time.perf_counter()
    policy = str(policy)
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit={limit} must be at least 1 (or None for the whole split)")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    tok_name = tokenizer_name or _tokenizer_name(policy)

    if lm is None:
        lm = _load_lm(policy, device)
        loaded_policy = True
    else:
        loaded_policy = False
    ref = resolve_reference(policy, reference)
    if not isinstance(ref, str):
        ref_lm = ref
    elif ref == policy and loaded_policy:
        ref_lm = lm  # the policy itself: one forward, kl == 0
    else:
        ref_lm = _load_lm(ref, device)
    lm.eval()
    ref_lm.eval()

    dialogues = dialogue_env.load_dataset(dataset, split) if not isinstance(dataset, (list, tuple)) else dataset
    n = len(dialogues) if limit is None else min(int(limit), len(dialogues))
    if n == 0:
        raise ValueError(f"dataset {dataset!r} split {split!r} has no dialogues")
    B = min(int(batch_size), n)
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=B, vectorization_mode="vector_entry_point",
                        model=tok_name, dataset=dataset, split=split, reward=reward,
                        max_new_tokens=max_new_tokens, max_context_tokens=max_context_tokens, device=device)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    rows: list[dict] = []
    bar = tqdm(total=n, desc="evaluate", unit="dlg", disable=not progress, dynamic_ncols=True)
    try:
        for lo in range(0, n, B):
            chunk = list(range(lo, min(lo + B, n)))
            keep = len(chunk)
            padded = chunk + [chunk[j % keep] for j in range(B - keep)]
            rollout = generate_through_env(venv, lm, temperature=temperature, greedy=greedy, generator=generator,
                                           dialogue_indices=padded)
            logp = sequence_logprobs(lm, rollout)  # (B, T)
            ref_logp = logp if ref_lm is lm else sequence_logprobs(ref_lm, rollout).to(logp.device)
            rows += rows_from_rollout(rollout, logp, ref_logp, keep)
            bar.update(keep)
            bar.set_postfix(reward=f"{np.mean([r['reward'] for r in rows]):.3f}",
                            kl=f"{np.mean([r['kl'] for r in rows]):.3f}")
    finally:
        bar.close()
        venv.close()

    ethics_stats = apply_ethics(rows, filter)
    summary = summarize(
        rows, ethics_stats,
        policy=policy, reference=_model_name(ref), dataset=dataset if isinstance(dataset, str) else
        f"<{len(dialogues)} dialogues>", split=split, reward_spec=_spec_for_json(reward), seed=int(seed),
        greedy=bool(greedy), temperature=float(temperature), max_new_tokens=int(max_new_tokens),
        filter=filter if filter is None or isinstance(filter, str) else type(filter).__name__,
        seconds=time.perf_counter() - start_time,
    )
    return summary, rows


def _spec_for_json(spec: Any) -> Any:
    if spec is None or isinstance(spec, (str, int, float)):
        return spec
    if isinstance(spec, Mapping):
        return {str(k): _spec_for_json(v) for k, v in spec.items()}
    return repr(spec)


# ------------------------------------------------------------------------------------------------------ output
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if torch.is_tensor(obj):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_outputs(summary: Mapping, rows: Sequence[Mapping], out_path) -> tuple[Path, Path]:
    """Write ``summary`` as JSON to ``out_path`` and ``rows`` as JSONL next to it (``out_path`` with suffix
    ``.jsonl``), each atomically (a temporary file in the same directory, then ``os.replace``). Creates the parent
    directory. Returns ``(summary_path, rows_path)``."""
    out = Path(out_path)
    rows_path = out.with_suffix(".jsonl")
    if rows_path == out:
        raise ValueError(f"--out {out} ends in .jsonl: give the summary's .json path; the rows go to <name>.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(dict(summary), indent=2, default=_json_default, ensure_ascii=False) + "\n")
    lines = [json.dumps(dict(r), default=_json_default, ensure_ascii=False) for r in rows]
    atomic_write_text(rows_path, "".join(line + "\n" for line in lines))
    return out, rows_path


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}f}" if abs(v) < 1e4 else f"{v:.4g}"


def format_table(summaries: Mapping[str, Mapping]) -> str:
    """A Markdown table with one column per named summary (e.g. ``{"before": s0, "after": s1}``): n, reward ± 95%
    CI, each component, KL, perplexity, distinct-1/2, mean length and tokens, ethics violations."""
    names = list(summaries)
    comps: list[str] = []
    for s in summaries.values():
        comps += [k for k in s.get("components", {}) if k not in comps]

    def pct(v):
        return "–" if v is None else f"{100 * float(v):.1f}%"

    def reward_cell(s):
        if "reward" not in s:
            return "–"
        return f"{_fmt(s['reward'])} ± {_fmt(s.get('reward_ci95'))}"

    lines: list[tuple[str, list[str]]] = [
        ("n", [_fmt(s.get("n")) for s in summaries.values()]),
        ("reward (± 95% CI)", [reward_cell(s) for s in summaries.values()]),
    ]
    for k in comps:
        lines.append((f"reward/{k}", [_fmt(s.get("components", {}).get(k)) for s in summaries.values()]))
    lines += [
        ("KL to reference", [_fmt(s.get("kl")) for s in summaries.values()]),
        ("perplexity (reference)", [_fmt(s.get("perplexity"), 2) for s in summaries.values()]),
        ("distinct-1", [_fmt(s.get("distinct_1")) for s in summaries.values()]),
        ("distinct-2", [_fmt(s.get("distinct_2")) for s in summaries.values()]),
        ("mean length (words)", [_fmt(s.get("mean_length"), 1) for s in summaries.values()]),
        ("mean length (tokens)", [_fmt(s.get("mean_tokens"), 1) for s in summaries.values()]),
        ("ethics violations", [pct(s.get("ethics_violation_rate")) for s in summaries.values()]),
    ]
    if any("ethics_violation_rate_after" in s for s in summaries.values()):
        lines.append(("ethics violations after filter",
                      [pct(s.get("ethics_violation_rate_after")) for s in summaries.values()]))
        lines.append(("replies replaced by filter", [_fmt(s.get("n_replaced")) for s in summaries.values()]))
    header = "| metric | " + " | ".join(names) + " |"
    sep = "|---|" + "---:|" * len(names)
    body = ["| " + label + " | " + " | ".join(cells) + " |" for label, cells in lines]
    return "\n".join([header, sep, *body])


# --------------------------------------------------------------------------------------------------------- CLI
def _parse_reward(text: str | None) -> Any:
    if text is None:
        return None
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            spec = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(f"--reward {text!r} looks like JSON but does not parse: {err}") from err
        if not isinstance(spec, dict):
            raise argparse.ArgumentTypeError(f"--reward must be a name or a JSON object, got {text!r}")
        return spec
    return stripped


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dialogue-rl evaluate",
        description="Generate one reply per dialogue with a policy, through the env, and write a JSON summary "
                    "(reward, components, KL, perplexity, distinct-n, ethics) plus one JSONL row per dialogue.")
    p.add_argument("--policy", required=True, help="smollm2-135m, tiny-random, a hub id, a path or a checkpoint dir")
    p.add_argument("--dataset", default="customer_service", help="customer_service, chatterbot or a JSONL path")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--filter", default=None, choices=["ethics"], help="replace unsafe replies after generation")
    p.add_argument("--reward", type=_parse_reward, default=None,
                   help='a reward name or a JSON dict such as \'{"coherence": 1, "ethics": 1}\' (default: the '
                        "seed's reward)")
    p.add_argument("--reference", default="auto",
                   help="reference model for KL and perplexity (default: a checkpoint's base model, else the policy)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N dialogues")
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--greedy", action="store_true", help="argmax decoding instead of sampling")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--max-context-tokens", type=int, default=512)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="summary JSON path; the rows go next to it as .jsonl")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    summary, rows = evaluate_policy(
        args.policy, dataset=args.dataset, split=args.split, reward=args.reward, reference=args.reference,
        filter=args.filter, max_new_tokens=args.max_new_tokens, max_context_tokens=args.max_context_tokens,
        batch_size=args.batch_size, greedy=args.greedy, temperature=args.temperature, seed=args.seed,
        device=args.device, limit=args.limit, progress=not args.no_progress)
    summary_path, rows_path = write_outputs(summary, rows, args.out)
    label = Path(args.policy).name or args.policy
    print(format_table({label: summary}))
    print(f"\n{summary['n']} dialogues of {summary['dataset']}/{summary['split']} in {summary['seconds']:.1f} s; "
          f"reference: {summary['reference']}")
    print(f"wrote {summary_path} and {rows_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

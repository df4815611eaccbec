"""Evaluate a dialogue policy: one reply per dialogue of a split, scored exactly as the environment scores it.

``dialogue-rl evaluate --policy P --dataset D [--split test] [--filter ethics] --out results/eval.json`` writes

- ``results/eval.json``: the summary -- ``n``; ``reward`` (mean of the env's reward), ``reward_std`` (population std
  over dialogues), ``reward_ci95`` (``1.96 * std / sqrt(n)``); each reward component's mean, in ``components`` and
  flattened as ``reward/<name>``; ``kl`` and ``perplexity`` against the reference model; ``distinct_1``,
  ``distinct_2``; ``mean_length`` (words) and ``mean_tokens``; ``ethics_violation_rate`` (and, with a filter,
  ``ethics_violation_rate_before`` / ``_after`` and ``n_replaced``); and the run's settings.
- ``results/eval.jsonl``: one row per dialogue with its context, reference, reply and scores.

Every reply is generated through ``DialogueVectorEnv`` by the one collector (:func:`agents.collect.collect`, via
:func:`agents.evaluator.evaluate_actor`), so the reward is the env's own, computed on the decoded reply the env saw.
``--policy`` takes a training run directory (its newest checkpoint), a checkpoint directory, a model directory, a
built-in model name or a hub id. The metrics::

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

from agents.argtypes import positive_int, temperature
from agents.evaluator import (
    apply_ethics,
    apply_judges,
    distinct_n,
    env_ethics,
    evaluate_actor,
    judge_specs,
    make_judges,
    reply_logprobs,
    rows_from_rollout,
    summarize,
)
from rewards.utils import ConfigError, atomic_write_text, parse_yaml_value

__all__ = [
    "CHECKPOINT_META",
    "apply_ethics",
    "check_vocab",
    "checkpoint_meta",
    "distinct_n",
    "evaluate_policy",
    "format_table",
    "main",
    "resolve_policy",
    "resolve_reference",
    "rows_from_rollout",
    "summarize",
    "write_outputs",
]

CHECKPOINT_META = "dialogue_rl.json"  # written by the trainer into every checkpoint dir; {"base_model": name, ...}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


# ------------------------------------------------------------------------------------------------ model names
class PolicyError(ValueError):
    """``--policy`` names nothing loadable; the message says what was expected."""


_POLICY_FORMS = ("a training run directory (train's --out), a checkpoint directory (runs/NAME/checkpoints/iter-N), "
                 "a model directory with config.json, a built-in model name (smollm2-135m, tiny-random) or a Hugging "
                 "Face hub id")


def resolve_policy(policy, log=print) -> str:
    """What ``--policy`` names, as a model name or directory ``load_policy`` understands.

    A training run directory (it has ``checkpoints/``) becomes its newest complete checkpoint (and ``log`` says
    which); a directory with ``config.json`` (a checkpoint or any saved model) and a built-in name are taken as
    they are; ``org/name`` that is not a local path is taken as a hub id. Anything else raises
    :class:`PolicyError` naming the path and what was expected."""
    from dialogue_env.models import SMOLLM2_NAMES, TINY_NAMES

    text = str(policy)
    if text in SMOLLM2_NAMES + TINY_NAMES:
        return text
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "checkpoints").is_dir():  # a run dir: its config.json is the run's config, not a model's
            from agents.ppo.checkpoint import latest_checkpoint

            ckpt = latest_checkpoint(path)
            if ckpt is None:
                raise PolicyError(f"--policy {text}: this training run has no complete checkpoint under "
                                  f"{path / 'checkpoints'} yet; let it reach a checkpoint (checkpoint_every) or "
                                  f"pass a checkpoint directory")
            log(f"[dialogue-rl] --policy {text} is a training run: using its newest checkpoint {ckpt}")
            return str(ckpt)
        if (path / "config.json").is_file():
            return str(path)
        raise PolicyError(f"--policy {text}: this directory has neither config.json (a model or checkpoint) nor "
                          f"checkpoints/ (a training run); expected {_POLICY_FORMS}")
    if path.exists():
        raise PolicyError(f"--policy {text} is a file; expected {_POLICY_FORMS}")
    parts = text.split("/")
    if len(parts) != 2 or text.startswith((".", "~")) or not all(parts):
        raise PolicyError(f"--policy {text}: no such directory; expected {_POLICY_FORMS}")
    return text


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


def _output_vocab(model) -> int | None:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    return int(size) if isinstance(size, int) else None


def check_vocab(tokenizer_name: str, **models) -> None:
    """Every model (``role=(name, model)``) must have an output layer as large as the env's action space, the
    vocabulary of ``tokenizer_name``: token ids are actions, so a checkpoint is evaluated with the tokenizer it was
    trained with. A mismatch is a :class:`PolicyError` naming both sizes and the fix."""
    from dialogue_env.models import vocab_size_of

    env_vocab = vocab_size_of(tokenizer_name)
    for role, (name, model) in models.items():
        size = _output_vocab(model)
        if size is not None and size != env_vocab:
            raise PolicyError(
                f"the {role} {name!r} has a vocabulary of {size} tokens but the env's tokenizer ({tokenizer_name!r}) "
                f"has {env_vocab}: token ids are the env's actions, so a model must be evaluated with the tokenizer "
                f"it was trained with. Save the tokenizer next to the checkpoint (tokenizer.save_pretrained), set "
                f"its {CHECKPOINT_META} 'base_model' to the model it was trained from, or pass a matching "
                f"{'--reference' if role == 'reference' else 'tokenizer_name'}"
            )


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


# ------------------------------------------------------------------------------------------------- evaluation
def evaluate_policy(policy, *, dataset="customer_service", split="test", reward=None, reference="auto", filter=None,
                    max_new_tokens=48, max_context_tokens=512, batch_size=25, greedy=False, temperature=0.7,
                    seed=1234, device="cpu", limit=None, lm=None, tokenizer_name=None, progress=True, judges=None):
    """Generate one reply per dialogue of ``dataset``/``split`` (all, or the first ``limit``) and score them.

    Args:
        policy: a model name or path for ``dialogue_env.load_policy`` ("smollm2-135m", "tiny-random", a hub id,
            a local dir, a training checkpoint dir). With ``lm`` given, only the name of its tokenizer/vocabulary.
        reward: the env's reward spec (None = ``rewards.DEFAULT_SPEC``).
        reference: "auto" (a checkpoint's ``base_model``, else ``policy``), a model name/path, or a loaded model.
            With ``lm`` given, a reference named like ``policy`` is loaded from that name, so the KL measures how
            far ``lm`` moved from those weights; pass ``reference=lm`` for a self-reference.
        filter: None, "ethics" or a ``rewards.EthicsFilter``: replace unsafe replies after generation.
        judges: rewards that score the same replies without being optimised (``--judge``): a list of specs or
            ``LABEL=SPEC`` strings, or ``{label: spec}`` (:func:`agents.evaluator.make_judges`); reported as
            ``judges`` / ``judge/<label>`` in the summary and ``judges`` in each row.
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
    policy = resolve_policy(policy, log=print if progress else (lambda *a, **k: None)) if lm is None else str(policy)
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit={limit} must be at least 1 (or None for the whole split)")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    tok_name = tokenizer_name or _tokenizer_name(policy)
    judge_modules = make_judges(judges)  # before minutes of generation, so a bad spec fails at once

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
    check_vocab(tok_name, policy=(policy, lm), reference=(_model_name(ref), ref_lm))

    dialogues = dialogue_env.load_dataset(dataset, split) if not isinstance(dataset, (list, tuple)) else dataset
    n = len(dialogues) if limit is None else min(int(limit), len(dialogues))
    if n == 0:
        raise ValueError(f"dataset {dataset!r} split {split!r} has no dialogues")
    B = min(int(batch_size), n)
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=B, vectorization_mode="vector_entry_point",
                        model=tok_name, dataset=dataset, split=split, reward=reward, return_tensors=True,
                        max_new_tokens=max_new_tokens, max_context_tokens=max_context_tokens, device=device)

    def logprobs(rollout):  # raw logits (temperature 1) of the policy and of the reference
        logp = reply_logprobs(lm, rollout)[0]  # (B, T)
        return logp, (logp if ref_lm is lm else reply_logprobs(ref_lm, rollout)[0].to(logp.device))

    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    bar = tqdm(total=n, desc="evaluate", unit="dlg", disable=not progress, dynamic_ncols=True)
    try:
        rows, _ = evaluate_actor(venv, lm, range(n), logprobs, temperature=temperature, greedy=greedy,
                                 generator=generator, progress=bar)
        ethics = env_ethics(venv, dataset)  # the dataset's ethics profile judges and filters
    finally:
        bar.close()
        venv.close()

    ethics_stats = apply_ethics(rows, filter, None if filter not in (None, "ethics") else ethics)
    apply_judges(rows, judge_modules)
    summary = summarize(
        rows, ethics_stats,
        policy=policy, reference=_model_name(ref), dataset=dataset if isinstance(dataset, str) else
        f"<{len(dialogues)} dialogues>", split=split, reward_spec=_spec_for_json(reward), seed=int(seed),
        greedy=bool(greedy), temperature=float(temperature), max_new_tokens=int(max_new_tokens),
        filter=filter if filter is None or isinstance(filter, str) else type(filter).__name__,
        judge_specs=_spec_for_json(judge_specs(judges)),
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


def check_output_path(out_path) -> Path:
    """``out_path`` as a Path if :func:`write_outputs` can write there; else a ``ConfigError`` that says why. The
    command line checks it before evaluating, so a bad ``--out`` costs nothing."""
    out = Path(out_path)
    if out.suffix == ".jsonl":
        raise ConfigError(f"--out {out} ends in .jsonl: give the summary's .json path; the rows go to <name>.jsonl")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder: give a file path such as {out / 'eval.json'}")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--out {out}: {parent} is a file, not a folder; choose another path")
            break
    return out


def write_outputs(summary: Mapping, rows: Sequence[Mapping], out_path) -> tuple[Path, Path]:
    """Write ``summary`` as JSON to ``out_path`` and ``rows`` as JSONL next to it (``out_path`` with suffix
    ``.jsonl``), each atomically (a temporary file in the same directory, then ``os.replace``). Creates the parent
    directory. Returns ``(summary_path, rows_path)``."""
    out = check_output_path(out_path)
    rows_path = out.with_suffix(".jsonl")
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
    CI, each component, each judge (a reward not optimised, ± 95% CI), KL, perplexity, distinct-1/2, mean length and
    tokens, ethics violations."""
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
    if any("turn_reward" in s for s in summaries.values()):  # multi-turn episodes
        lines.append(("per-turn reward (± 95% CI)", [
            f"{_fmt(s['turn_reward'])} ± {_fmt(s.get('turn_reward_ci95'))}" if "turn_reward" in s else "–"
            for s in summaries.values()]))
        lines.append(("turns per conversation", [_fmt(s.get("turns"), 2) for s in summaries.values()]))
    if any("resolution_rate" in s for s in summaries.values()):
        lines.append(("resolution rate (± 95% CI)", [
            f"{pct(s['resolution_rate'])} ± {pct(s.get('resolution_rate_ci95'))}" if "resolution_rate" in s else "–"
            for s in summaries.values()]))
    judges: list[str] = []
    for s in summaries.values():
        judges += [k for k in s.get("judges", {}) if k not in judges]

    def judge_cell(s, k):
        j = s.get("judges", {}).get(k)
        return "–" if j is None else f"{_fmt(j['mean'])} ± {_fmt(j['ci95'])}"

    for k in judges:
        lines.append((f"judge/{k} (± 95% CI)", [judge_cell(s, k) for s in summaries.values()]))
    lines += [
        ("KL to reference", [_fmt(s.get("kl")) for s in summaries.values()]),
        ("perplexity (reference)", [_fmt(s.get("perplexity"), 2) for s in summaries.values()]),
        ("distinct-1", [_fmt(s.get("distinct_1")) for s in summaries.values()]),
        ("distinct-2", [_fmt(s.get("distinct_2")) for s in summaries.values()]),
        ("mean length (words)", [_fmt(s.get("mean_length"), 1) for s in summaries.values()]),
        ("mean length (tokens)", [_fmt(s.get("mean_tokens"), 1) for s in summaries.values()]),
        *([("cut off at max_new_tokens", [pct(s.get("cut_off_rate")) for s in summaries.values()])]
          if any("cut_off_rate" in s for s in summaries.values()) else []),
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
            spec = parse_yaml_value(stripped, "--reward")
        except ConfigError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        if not isinstance(spec, dict):
            raise argparse.ArgumentTypeError(f"--reward must be a name or a mapping, got {text!r}")
        return spec
    return stripped


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dialogue-rl evaluate",
        description="Generate one reply per dialogue with a policy, through the env, and write a JSON summary "
                    "(reward, components, KL, perplexity, distinct-n, ethics) plus one JSONL row per dialogue.")
    p.add_argument("--policy", required=True, help="a training run dir (its newest checkpoint), a checkpoint dir, a "
                                                   "model dir, smollm2-135m, tiny-random or a hub id")
    p.add_argument("--dataset", default="customer_service", help="customer_service, chatterbot or a JSONL path")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--filter", default=None, choices=["ethics"], help="replace unsafe replies after generation")
    p.add_argument("--reward", type=_parse_reward, default=None,
                   help='a reward name or a JSON dict such as \'{"coherence": 1, "ethics": 1}\' (default: the '
                        "seed's reward)")
    p.add_argument("--judge", action="append", default=[], metavar="SPEC",
                   help="also score the replies with a reward that was not optimised, reported beside the reward "
                        "(repeatable): a name (coherence), a JSON dict ('{\"learned\": {\"path\": \"runs/rm\"}}'), "
                        "or LABEL=SPEC")
    p.add_argument("--reference", default="auto",
                   help="reference model for KL and perplexity (default: a checkpoint's base model, else the policy)")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N dialogues")
    p.add_argument("--batch-size", type=positive_int, default=25)
    p.add_argument("--greedy", action="store_true", help="argmax decoding instead of sampling")
    p.add_argument("--temperature", type=temperature, default=0.7)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--max-new-tokens", type=positive_int, default=48)
    p.add_argument("--max-context-tokens", type=positive_int, default=512)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="summary JSON path; the rows go next to it as .jsonl")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_output_path(args.out)
    except ConfigError as err:
        parser.error(str(err))
    try:
        args.policy = resolve_policy(args.policy)
    except PolicyError as err:
        raise SystemExit(f"dialogue-rl evaluate: {err}") from None
    summary, rows = evaluate_policy(
        args.policy, dataset=args.dataset, split=args.split, reward=args.reward, reference=args.reference,
        filter=args.filter, max_new_tokens=args.max_new_tokens, max_context_tokens=args.max_context_tokens,
        batch_size=args.batch_size, greedy=args.greedy, temperature=args.temperature, seed=args.seed,
        device=args.device, limit=args.limit, progress=not args.no_progress, judges=args.judge)
    summary_path, rows_path = write_outputs(summary, rows, args.out)
    label = Path(args.policy).name or args.policy
    print(format_table({label: summary}))
    print(f"\n{summary['n']} dialogues of {summary['dataset']}/{summary['split']} in {summary['seconds']:.1f} s; "
          f"reference: {summary['reference']}")
    print(f"wrote {summary_path} and {rows_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

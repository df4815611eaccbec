"""The one evaluator: one reply per dialogue, collected in chunks through the batched env, turned into rows and a
summary. ``dialogue-rl evaluate``, PPO's in-training evaluations and ``dialogue-rl compare`` all use it.

Per reply (row) and over all rows::

    kl_i        = sum_t [log pi_act(a_t | s_t) - log pi_ref(a_t | s_t)]   over the reply tokens of dialogue i (EOS
                                                                         included); which pi_act is the caller's
                                                                         choice (``logprobs=``)
    kl          = mean_i kl_i
    perplexity  = exp( sum_i sum_t -log pi_ref(a_t | s_t) / sum_i T_i )   over all reply tokens of all dialogues
    distinct_n  = |unique word n-grams| / |word n-grams|                  over all replies (lower-cased, split on
                                                                         whitespace)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from agents.collect import Rollout, collect
from agents.ppo.functional import logprobs_from_logits
from dialogue_env.kvcache import position_ids


@torch.no_grad()
def reply_logprobs(model, rollout: Rollout, temperatures: Sequence[float] = (1.0,)) -> list[torch.Tensor]:
    """``log softmax(logits / t)[a_t]`` (B, T) of the rollout's reply tokens under ``model``, one tensor per
    temperature ``t``, from one batched teacher-forced forward over context + reply (:meth:`Rollout.sequence`,
    left-padded, positions from the mask as in generation). ``logits_to_keep=T`` makes the model compute only the
    reply positions, never the ``(B, Lq, V)`` context logits. Float32 on the model's device; positions after a reply
    ended hold filler (mask them)."""
    device = next(model.parameters()).device
    ids, mask = rollout.sequence()  # (B, Lq + T - 1)
    ids, mask = ids.to(device), mask.to(device).long()
    T = rollout.response_ids.shape[1]
    logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False,
                   logits_to_keep=T).logits
    logits = logits[:, -T:].float()  # (B, T, V): position Lq-1+t predicts reply token t
    targets = rollout.response_ids.to(device)
    return [logprobs_from_logits(logits / t, targets) for t in temperatures]


def rows_from_rollout(rollout: Rollout, logp: torch.Tensor | None, ref_logp: torch.Tensor, keep: int) -> list[dict]:
    """Per-dialogue rows for the first ``keep`` sub-envs of a chunk (the rest repeat dialogues to fill the batch).
    ``logp`` None: the actor's log-probs are unknown, so is its KL (``None``)."""
    m = rollout.response_mask.to(ref_logp.device).float()  # (B, T)
    n_tok = m.sum(1)  # (B,)
    kl = None if logp is None else ((logp.to(ref_logp.device) - ref_logp) * m).sum(1)  # (B,)
    nll = (-ref_logp * m).sum(1) / n_tok.clamp(min=1)  # (B,) mean NLL per reply token under the reference
    return [{
        "dialogue_id": rollout.dialogue_ids[i],
        "context": rollout.contexts[i],
        "reference": rollout.references[i],
        "reply": rollout.responses[i],
        "reply_raw": rollout.responses[i],
        "reward": float(rollout.scores[i]),
        "components": {k: float(v[i]) for k, v in rollout.components.items()},
        "ethics_unsafe": False,
        "ethics_reason": None,
        "kl": None if kl is None else float(kl[i]),
        "nll": float(nll[i]),
        "n_tokens": int(n_tok[i]),
        # single-turn: the reply reached max_new_tokens without an end-of-reply token (None for conversations)
        "cut_off": not bool(rollout.terminated[i]) if rollout.single_turn else None,
        **turn_fields(rollout.turns[i] if rollout.turns else []),
    } for i in range(keep)]


def turn_fields(records: list) -> dict:
    """A multi-turn episode's row fields: ``turn_rewards`` (each reply's own reward), ``outcome`` ("resolved" /
    "gave_up" / None) and ``outcome_reward``. Empty for a one-reply episode."""
    if len(records) < 2 and not (records and records[-1].get("outcome") is not None):
        return {}
    return {"turn_rewards": [float(r.get("turn_reward", r["reward"])) for r in records],
            "outcome": records[-1].get("outcome"), "outcome_reward": float(records[-1].get("outcome_reward", 0.0))}


LogprobFn = Callable[[Rollout], tuple[Any, torch.Tensor]]


def evaluate_actor(venv, actor, indices: Sequence[int], logprobs: LogprobFn, *, seed: int | None = None,
                   sort_by_length: bool = False, progress=None, **collect_kwargs) -> tuple[list[dict], dict]:
    """One reply per dialogue index in ``indices``, written by ``actor`` through ``venv`` in chunks of
    ``venv.num_envs`` sub-envs (the last chunk is padded by repeating its dialogues; the extras are dropped).

    ``logprobs(rollout) -> (act_logp or None, ref_logp)``, each (B, T): the KL and perplexity inputs.
    ``seed`` seeds the first chunk's reset; ``collect_kwargs`` go to :func:`agents.collect.collect` (the same
    ``generator`` object serves every chunk). ``sort_by_length`` batches dialogues of similar context length (less
    padding); rows always come back in the order of ``indices``. ``progress``: a tqdm bar updated per dialogue.
    Returns ``(rows, stats)`` with ``stats = {"env_steps", "seconds"}``."""
    indices = [int(i) for i in indices]
    B = venv.num_envs
    order = list(range(len(indices)))
    if sort_by_length:
        lengths = venv.unwrapped.context_lengths
        order.sort(key=lambda j: int(lengths[indices[j]]))
    rows: list[dict | None] = [None] * len(indices)
    steps, t0 = 0, time.perf_counter()
    for c, lo in enumerate(range(0, len(order), B)):
        part = order[lo:lo + B]
        chunk = [indices[j] for j in part]
        padded = chunk + [chunk[j % len(chunk)] for j in range(B - len(chunk))]
        ro = collect(venv, actor, dialogue_indices=padded, seed=seed if c == 0 else None, **collect_kwargs)
        act_logp, ref_logp = logprobs(ro)
        for j, row in zip(part, rows_from_rollout(ro, act_logp, ref_logp, len(chunk))):
            rows[j] = row
        steps += int(ro.stats.get("env_steps", 0))
        if progress is not None:
            progress.update(len(chunk))
    return rows, {"env_steps": steps, "seconds": time.perf_counter() - t0}


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


def env_ethics(env: Any, dataset: Any = None) -> Any:
    """The ethics judgement for an env's replies: its reward's ``ethics`` part (so the dataset's ethics profile, or
    the one the reward spec chose, judges and filters), else an ``EthicsReward`` with ``dataset``'s profile."""
    import rewards
    from dialogue_env.data import dataset_info

    for c in getattr(getattr(env.unwrapped, "reward_module", None), "components", ()):
        if isinstance(c.module, rewards.EthicsReward):
            return c.module
    return rewards.EthicsReward(profile=dataset_info(dataset).ethics_profile)


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


# ------------------------------------------------------------------------------------------------------ judges
def judge_label(spec: Any) -> str:
    """The name a judge spec is reported under when none is given: a reward name -> that name; a dict with one
    reward -> its key (``{"learned": {"path": DIR}}`` -> ``learned``); anything else -> its ``name``."""
    if isinstance(spec, str):
        return spec.strip()
    if isinstance(spec, Mapping):
        keys = [k for k in spec if k != "gate"]
        return str(keys[0]) if len(keys) == 1 else "+".join(map(str, keys))
    return str(getattr(spec, "name", type(spec).__name__))


def parse_judge(text: str) -> tuple[str, Any]:
    """``(label, reward spec)`` of a ``--judge`` argument: a reward name (``coherence``), a YAML or JSON reward dict
    (``'{"learned": {"path": "runs/rm"}}'``), or either prefixed by ``LABEL=`` to name it (``lm='{"learned": ...}'``).
    A malformed argument is a :class:`rewards.utils.ConfigError` naming it."""
    from rewards.utils import ConfigError, parse_yaml_value

    text = str(text).strip()
    label, sep, rest = text.partition("=")
    if sep and label and not label.lstrip().startswith("{"):
        label, spec_text = label.strip(), rest.strip()
    else:
        label, spec_text = "", text
    if not spec_text:
        raise ConfigError(f"--judge {text!r}: no reward given; use a name (coherence), a JSON dict "
                         "('{\"learned\": {\"path\": \"runs/rm\"}}') or LABEL=SPEC")
    spec: Any = spec_text
    if spec_text.startswith("{"):
        spec = parse_yaml_value(spec_text, "--judge")
    return label or judge_label(spec), spec


def judge_specs(specs: Any) -> dict[str, Any]:
    """``{label: reward spec}`` for judge specs: a list of ``--judge`` strings or reward specs (names, dicts), or a
    mapping ``{label: spec}``. Two judges with one label is a :class:`rewards.utils.ConfigError` (name them apart
    with ``LABEL=SPEC``)."""
    from rewards.utils import ConfigError

    if not specs:
        return {}
    if isinstance(specs, Mapping):
        return {str(k): v for k, v in specs.items()}
    if isinstance(specs, str):
        specs = [specs]
    if not isinstance(specs, (list, tuple)):
        raise ConfigError(f"judges={specs!r}: give a list of reward specs or LABEL=SPEC strings, or a mapping "
                          "{label: spec} (e.g. judges: {learned: {learned: {path: runs/rm_lm}}})")
    out: dict[str, Any] = {}
    for label, spec in (parse_judge(s) if isinstance(s, str) else (judge_label(s), s) for s in specs):
        if label in out:
            raise ConfigError(f"two judges are named {label!r}; name them apart with LABEL=SPEC (e.g. "
                              f"--judge lm='{{\"learned\": {{\"path\": \"runs/rm_lm\"}}}}')")
        out[label] = spec
    return out


def make_judges(specs: Any) -> dict[str, Any]:
    """``{label: reward module}`` for :func:`judge_specs`' specs, each built with :func:`rewards.make_composite`
    (a dict spec may hold several parts and a gate; the judge's value is the composite's total)."""
    import rewards

    return {label: rewards.make_composite(spec) for label, spec in judge_specs(specs).items()}


def apply_judges(rows: list[dict], judges: Mapping[str, Any]) -> None:
    """Score every row's ``reply_raw`` (what the policy wrote, before any filter) with each judge, a reward that
    was not optimised, into ``row["judges"][label]``; :func:`summarize` then reports them. A judge sees what the
    env's reward saw: the context and the dialogue's reference reply (``row["reference"]``), so a coherence judge
    compares with the reference, as the env's coherence does."""
    if not judges or not rows:
        return
    contexts = [r["context"] or [] for r in rows]
    replies = [r["reply_raw"] for r in rows]
    references = [r.get("reference") for r in rows]
    for label, judge in judges.items():
        for row, v in zip(rows, judge(contexts, replies, references=references)):
            row.setdefault("judges", {})[label] = float(v)


def paired_gain(rows_before: Sequence[Mapping], rows_after: Sequence[Mapping], judge: str | None = None,
                component: str | None = None) -> tuple[float, float] | None:
    """The gain of the reward (or of judge ``judge``, or of the reward's ``component``, ungated) from
    ``rows_before`` to ``rows_after``, two evaluations of the same dialogues, in standard deviations of the before
    rows' per-dialogue values, with its 95% confidence half-width from the paired differences::

        gain = (mean(after) - mean(before)) / std(before)
        ci95 = 1.96 * std(after_i - before_i) / sqrt(n) / std(before)

    None when the rows are not the same dialogues in the same order (then no pairing is possible) or a value is
    missing, or the before values are all equal."""
    if not rows_before or len(rows_before) != len(rows_after):
        return None
    if any(b.get("dialogue_id") != a.get("dialogue_id") for b, a in zip(rows_before, rows_after)):
        return None

    def value(row):
        return row["judges"][judge] if judge is not None else (
            row["components"][component] if component is not None else row["reward"])

    try:
        x = np.asarray([value(r) for r in rows_before], dtype=np.float64)
        y = np.asarray([value(r) for r in rows_after], dtype=np.float64)
    except KeyError:
        return None
    std = float(x.std())
    if std == 0.0:  # a constant before (e.g. no unsafe reply): no scale to measure a gain in
        return None
    return float((y.mean() - x.mean()) / std), float(1.96 * (y - x).std() / math.sqrt(len(x)) / std)


def by_cut_off(rows: Sequence[Mapping], judge: str | None = None) -> dict[str, tuple[int, float]] | None:
    """``{"finished": (n, mean), "cut_off": (n, mean)}`` of the rows' reward (or of judge ``judge``), split by
    whether the reply reached max_new_tokens without ending; a side with no rows is left out. None for rows without
    ``cut_off`` (conversations). Where a gain comes from: finishing more replies, or better replies of each kind."""
    groups: dict[str, list[float]] = {"finished": [], "cut_off": []}
    for row in rows:
        if row.get("cut_off") is None:
            return None
        value = row["reward"] if judge is None else row.get("judges", {}).get(judge)
        if value is not None:
            groups["cut_off" if row["cut_off"] else "finished"].append(float(value))
    return {k: (len(v), float(np.mean(v))) for k, v in groups.items() if v}


def _judge_stats(rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    """``{label: {"mean", "std" (population), "ci95"}}`` over the rows' judge scores."""
    labels: list[str] = []
    for row in rows:
        labels += [k for k in row.get("judges", {}) if k not in labels]
    out = {}
    for label in labels:
        v = np.asarray([row["judges"][label] for row in rows if label in row.get("judges", {})], dtype=np.float64)
        std = float(v.std())
        out[label] = {"mean": float(v.mean()), "std": std, "ci95": 1.96 * std / math.sqrt(len(v))}
    return out


def summarize(rows: Sequence[Mapping], ethics_stats: Mapping | None = None, **meta: Any) -> dict:
    """The summary of evaluated rows: n, reward (mean, population std, 95% CI), components (nested and flattened as
    ``reward/<name>``), kl (None if any row's is unknown), perplexity, distinct-1/2, mean length (words, tokens),
    ``cut_off_rate`` (single-turn: replies that reached max_new_tokens without ending), the ethics fields; with judge scores in the rows (:func:`apply_judges`), ``judges`` (``{label: {mean, std,
    ci95}}``) and ``judge/<label>`` (the mean); ``meta`` (policy, dataset, ...) is appended."""
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
    kls = [row["kl"] for row in rows]
    summary: dict[str, Any] = {
        "n": n,
        "reward": float(r.mean()),
        "reward_std": std,
        "reward_ci95": 1.96 * std / math.sqrt(n),
        "components": components,
        **{f"reward/{k}": v for k, v in components.items()},
        "kl": None if any(k is None for k in kls) else float(np.mean(kls)),
        "perplexity": float(math.exp(nll_sum / max(n_tokens.sum(), 1.0))),
        "distinct_1": distinct_n(raw, 1),
        "distinct_2": distinct_n(raw, 2),
        "mean_length": float(np.mean([len(t.split()) for t in raw])),
        "mean_tokens": float(n_tokens.mean()),
    }
    cut = [row["cut_off"] for row in rows if row.get("cut_off") is not None]
    if cut:  # the share of replies the length limit ended, not the model
        summary["cut_off_rate"] = float(np.mean(cut))
    summary.update(turn_summary(rows))
    if ethics_stats is None:
        ethics_stats = {"ethics_violation_rate": float(np.mean([bool(row["ethics_unsafe"]) for row in rows]))}
    summary.update(ethics_stats)
    judges = _judge_stats(rows)
    if judges:
        summary["judges"] = judges
        summary.update({f"judge/{k}": v["mean"] for k, v in judges.items()})
    summary.update(meta)
    return summary


def turn_summary(rows: Sequence[Mapping]) -> dict:
    """Multi-turn fields of a summary (none if no row has turns): ``turn_reward`` (mean of each conversation's mean
    per-turn reward) with its 95% CI over conversations, ``turns`` (mean replies per conversation), and, when the
    simulator gives outcomes, ``resolution_rate`` with a 95% CI (normal approximation over conversations)."""
    multi = [row for row in rows if "turn_rewards" in row]
    if not multi:
        return {}
    per = np.asarray([np.mean(row["turn_rewards"]) for row in multi], dtype=np.float64)
    out = {"turn_reward": float(per.mean()), "turn_reward_ci95": 1.96 * float(per.std()) / math.sqrt(len(per)),
           "turns": float(np.mean([len(row["turn_rewards"]) for row in multi]))}
    outcomes = [row.get("outcome") for row in multi]
    if any(o is not None for o in outcomes):
        res = np.asarray([o == "resolved" for o in outcomes], dtype=np.float64)
        out.update(resolution_rate=float(res.mean()), resolution_rate_ci95=1.96 * float(res.std()) / math.sqrt(len(res)))
    return out


__all__ = ["apply_ethics", "apply_judges", "distinct_n", "env_ethics", "evaluate_actor", "judge_label", "judge_specs",
           "make_judges", "parse_judge", "reply_logprobs", "rows_from_rollout", "summarize", "turn_summary"]

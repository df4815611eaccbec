"""The comparison's outputs: per-agent summaries, the Markdown and CSV tables, the two PNG plots."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from rewards.utils import atomic_path

from .config import COMPONENTS_PNG_SIZE, CURVES_PNG_SIZE

_DPI = 100


# ----------------------------------------------------------------------------------------------------- summary
def _ci(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(1.96 * v.std() / math.sqrt(len(v))) if len(v) else float("nan")


def summarize_agent(rows: list[dict]) -> dict:
    """Pooled summary of one agent's evaluation rows (all seeds): ``agents.evaluate.summarize`` plus a CI per
    component, per-seed reward means, KL (None if any row's is unknown) and the cost columns."""
    from agents.evaluator import summarize

    base = summarize(rows)
    base["components_ci95"] = {k: _ci([r["components"].get(k, 0.0) for r in rows]) for k in base["components"]}
    seeds = sorted({r["seed"] for r in rows})
    base["seeds"] = seeds
    base["reward_by_seed"] = {s: float(np.mean([r["reward"] for r in rows if r["seed"] == s])) for s in seeds}
    runs = {s: next(r for r in rows if r["seed"] == s) for s in seeds}
    steps = sum(runs[s]["train_env_steps"] for s in seeds)
    wall = sum(runs[s]["train_wall_s"] for s in seeds)
    base["train_env_steps"] = steps / len(seeds)
    base["train_wall_s"] = wall / len(seeds)
    base["train_env_steps_per_s"] = steps / wall if wall > 0 else None
    eval_steps = sum(runs[s]["eval_env_steps"] for s in seeds)
    eval_wall = sum(runs[s]["eval_wall_s"] for s in seeds)
    base["eval_wall_s"] = eval_wall / len(seeds)
    base["eval_env_steps_per_s"] = eval_steps / eval_wall if eval_wall > 0 else None
    return base


def _f(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def markdown_table(summaries: Mapping[str, dict]) -> str:
    """One row per agent: reward and components (mean ± 95% CI), KL, perplexity, distinct-n, ethics, costs."""
    comps: list[str] = []
    for s in summaries.values():
        comps += [k for k in s["components"] if k not in comps]
    turn_cols = [k for k in ("turn_reward", "resolution_rate") if any(k in s for s in summaries.values())]
    head = (["agent", "n", "reward"] + [k.replace("_", " ") for k in turn_cols] + comps
            + ["KL", "perplexity", "distinct-1", "distinct-2", "ethics viol.", "train steps", "train wall (s)",
               "train steps/s", "eval steps/s"])
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, s in summaries.items():
        cells = [name, str(s["n"]), f"{_f(s['reward'])} ± {_f(s['reward_ci95'])}"]
        cells += [f"{_f(s.get(k))} ± {_f(s.get(f'{k}_ci95'))}" for k in turn_cols]  # multi-turn: per conversation
        cells += [f"{_f(s['components'].get(k))} ± {_f(s['components_ci95'].get(k))}" for k in comps]
        cells += [_f(s["kl"], 2), _f(s["perplexity"], 2), _f(s["distinct_1"]), _f(s["distinct_2"]),
                  f"{100 * s['ethics_violation_rate']:.1f}%", f"{s['train_env_steps']:.0f}",
                  _f(s["train_wall_s"], 1), _f(s["train_env_steps_per_s"], 1), _f(s["eval_env_steps_per_s"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_text(summaries: Mapping[str, dict]) -> str:
    comps: list[str] = []
    for s in summaries.values():
        comps += [k for k in s["components"] if k not in comps]
    cols = (["agent", "n", "seeds", "reward", "reward_ci95"] + [c for k in comps for c in (k, f"{k}_ci95")]
            + ["kl", "perplexity", "distinct_1", "distinct_2", "ethics_violation_rate", "train_env_steps",
               "train_wall_s", "train_env_steps_per_s", "eval_wall_s", "eval_env_steps_per_s"])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(cols)
    for name, s in summaries.items():
        row = [name, s["n"], " ".join(map(str, s["seeds"])), s["reward"], s["reward_ci95"]]
        row += [x for k in comps for x in (s["components"].get(k), s["components_ci95"].get(k))]
        row += [s["kl"], s["perplexity"], s["distinct_1"], s["distinct_2"], s["ethics_violation_rate"],
                s["train_env_steps"], s["train_wall_s"], s["train_env_steps_per_s"], s["eval_wall_s"],
                s["eval_env_steps_per_s"]]
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------- plots
def _smooth(points: list[dict], window: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Running mean of the reward over the last ``window`` training episodes (a PPO point counts as many
    episodes as its rollout had). Returns (env_steps, wall_s, reward)."""
    grouped: dict[int, dict] = {}  # episodes that ended on the same env step (batched envs): one point
    for p in points:
        g = grouped.setdefault(int(p["env_steps"]), {"env_steps": int(p["env_steps"]), "wall_s": p["wall_s"],
                                                     "sum": 0.0, "episodes": 0})
        g["sum"] += p["reward"] * p.get("episodes", 1)
        g["episodes"] += p.get("episodes", 1)
        g["wall_s"] = max(g["wall_s"], p["wall_s"])
    pts = [{**g, "reward": g["sum"] / g["episodes"]} for _, g in sorted(grouped.items())]
    xs, ws, ys = [], [], []
    for i, p in enumerate(pts):
        total, weight, j = 0.0, 0, i
        while j >= 0 and weight < window:
            total += pts[j]["reward"] * pts[j].get("episodes", 1)
            weight += pts[j].get("episodes", 1)
            j -= 1
        xs.append(p["env_steps"])
        ws.append(p["wall_s"])
        ys.append(total / weight)
    return np.asarray(xs), np.asarray(ws), np.asarray(ys)


def _save_figure(fig, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)


def plot_curves(curves: Mapping[str, Mapping[int, list]], summaries: Mapping[str, dict], path: Path) -> None:
    """curves.png: training reward (running mean) vs env steps and vs wall time per trainable agent, one line per
    seed; stars mark each trained agent's evaluation reward; dashed lines the untrained agents' evaluation reward."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(CURVES_PNG_SIZE[0] / _DPI, CURVES_PNG_SIZE[1] / _DPI), dpi=_DPI)
    axes = fig.subplots(1, 2)
    colors = {name: f"C{i % 10}" for i, name in enumerate(summaries)}
    for name, by_seed in curves.items():
        for j, points in enumerate(by_seed.values()):
            if not points:
                continue
            steps, wall, reward = _smooth(points)
            label = name if j == 0 else None
            axes[0].plot(steps, reward, color=colors[name], alpha=0.8, lw=1.2, label=label)
            axes[1].plot(wall, reward, color=colors[name], alpha=0.8, lw=1.2, label=label)
    for name, s in summaries.items():
        if name in curves and any(curves[name].values()):
            axes[0].plot([s["train_env_steps"]], [s["reward"]], marker="*", ms=12, color=colors[name], ls="none")
            axes[1].plot([s["train_wall_s"]], [s["reward"]], marker="*", ms=12, color=colors[name], ls="none")
        else:
            for ax in axes:
                ax.axhline(s["reward"], color=colors[name], ls="--", lw=1.0, label=f"{name} (eval)")
    axes[0].set_xlabel("env steps (training)")
    axes[1].set_xlabel("wall time of training (s)")
    for ax in axes:
        ax.set_ylabel("reward per reply")
        ax.grid(alpha=0.3)
    axes[0].set_title("training reward (running mean); * = held-out eval", fontsize=10)
    axes[1].set_title("same, against wall time", fontsize=10)
    axes[1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    _save_figure(fig, path)


def plot_components(summaries: Mapping[str, dict], path: Path) -> None:
    """components.png: the held-out reward and each reward component per agent (mean, 95% CI error bars)."""
    from matplotlib.figure import Figure

    comps: list[str] = []
    for s in summaries.values():
        comps += [k for k in s["components"] if k not in comps]
    groups = ["reward"] + comps
    fig = Figure(figsize=(COMPONENTS_PNG_SIZE[0] / _DPI, COMPONENTS_PNG_SIZE[1] / _DPI), dpi=_DPI)
    ax = fig.subplots()
    names = list(summaries)
    width = 0.8 / len(groups)
    x = np.arange(len(names))
    for g, key in enumerate(groups):
        if key == "reward":
            vals = [summaries[n]["reward"] for n in names]
            errs = [summaries[n]["reward_ci95"] for n in names]
        else:
            vals = [summaries[n]["components"].get(key, np.nan) for n in names]
            errs = [summaries[n]["components_ci95"].get(key, np.nan) for n in names]
        ax.bar(x + (g - (len(groups) - 1) / 2) * width, vals, width, yerr=errs, capsize=2, label=key,
               color="black" if key == "reward" else f"C{g % 10}", alpha=0.85)
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=9)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("held-out value (mean ± 95% CI)")
    ax.set_title("reward and its components per agent (components unweighted)", fontsize=10)
    ax.legend(fontsize=8, ncol=min(len(groups), 5))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path)


# ------------------------------------------------------------------------------------------------------ output
def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)

"""``compare()``: train every trainable agent with the same budget, evaluate every agent on the same held-out
dialogues, write the outputs."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from rewards.utils import ConfigError
from rewards.utils import atomic_write_text as _write

from .config import CompareConfig
from .evaluation import _Evaluator
from .report import _json_default, csv_text, markdown_table, plot_components, plot_curves, summarize_agent
from .roster import BUILTINS, observation_kind, resolve_agents


def compare(agents=None, *, out, config: CompareConfig | Mapping | str | None = None, progress: bool = True,
            log=print, **settings) -> dict:
    """Train (with the same budget) and evaluate (on the same held-out dialogues) every agent; write the outputs.

    Args:
        agents: None (``config.agents``), a comma string, a list of specs, or a dict ``name -> spec or object``
            (an object with SB3's ``predict``: an SB3 model or your own agent).
        out: output directory.
        config: a ``CompareConfig``, a dict of its fields, or a YAML path; ``settings`` override single fields
            (e.g. ``model="tiny-random", seeds=[0], budget_steps=512``).
    Returns:
        ``{"summaries": {agent: summary}, "rows": [...], "curves": {...}, "paths": {...}}``.
    """
    if isinstance(config, (str, os.PathLike)):
        from agents.presets import resolve_config

        cfg = CompareConfig.from_yaml(resolve_config(config), **settings)
    elif isinstance(config, CompareConfig):
        cfg = CompareConfig.from_dict({**dataclasses.asdict(config), **settings})
    else:
        cfg = CompareConfig.from_dict({**(config or {}), **settings})
    entries = resolve_agents(agents if agents is not None else cfg.agents, log=log)
    from dialogue_env.models import check_device, vocab_size_of

    check_device(cfg.device)  # before the output folder is made
    vocab = vocab_size_of(cfg.model)  # from the model's config alone
    if not 1 <= cfg.k <= vocab:
        raise ConfigError(f"k={cfg.k} must be in 1..{vocab} (the vocabulary of {cfg.model}): the actions of "
                          "DialogueTopK-v0 are the reference's k most likely tokens")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file: give the folder for the comparison's outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a parent folder should be
        raise ConfigError(f"--out {out}: a part of the path is a file, not a folder; choose another path") from None
    from tqdm.auto import tqdm

    import dialogue_env  # noqa: F401
    from agents.evaluator import apply_ethics
    from dialogue_env.topk import reference_lm

    t_start = time.perf_counter()
    ref_lm = reference_lm(cfg.model, str(torch.device(cfg.device)))
    evaluator = _Evaluator(cfg, ref_lm)
    log(f"[compare] {len(entries)} agents x {len(cfg.seeds)} seeds on {cfg.model}; budget {cfg.budget_steps} env steps"
        f"{'' if cfg.budget_seconds is None else f' / {cfg.budget_seconds:.0f} s'}; evaluation on "
        f"{len(evaluator.indices)} {cfg.eval_split} dialogues")
    rows: list[dict] = []
    curves: dict[str, dict[int, list]] = {}
    paths = {name: out / name for name in ("episodes.jsonl", "curves.jsonl", "summary.md", "summary.csv",
                                           "summary.json", "curves.png", "components.png")}

    def write_rows() -> None:  # after every agent and seed, so a long run's finished work is on disk
        _write(paths["episodes.jsonl"], "".join(json.dumps(r, default=_json_default, ensure_ascii=False) + "\n"
                                                for r in rows))
        _write(paths["curves.jsonl"], "".join(json.dumps({"agent": a, "seed": s, **p}, default=_json_default) + "\n"
                                              for a, by_seed in curves.items() for s, pts in by_seed.items()
                                              for p in pts))

    try:
        for entry in entries:
            for seed in cfg.seeds:
                eval_seed = cfg.eval_seed_offset + seed
                agent_dir = out / "agents" / entry.name / f"seed-{seed}"
                train_info = {"train_env_steps": 0, "train_wall_s": 0.0, "artifact": None}
                b = entry.builtin
                spec = BUILTINS.get(b) if b is not None else None
                if spec is not None and spec.train is not None:
                    actor, train_info, curve = spec.train(cfg, seed, agent_dir, progress)
                    curves.setdefault(entry.name, {})[seed] = curve
                elif spec is not None:
                    actor = spec.build(cfg, ref_lm, eval_seed)
                else:
                    actor = entry.obj
                    if hasattr(actor, "reseed"):
                        actor.reseed(eval_seed)
                torch.manual_seed(eval_seed)
                np.random.seed(eval_seed)
                bar = tqdm(total=len(evaluator.indices), desc=f"eval {entry.name} seed {seed}", unit="dlg",
                           disable=not progress, dynamic_ncols=True)
                try:
                    if isinstance(actor, torch.nn.Module):  # a language model writes on Dialogue-v0
                        kind = "lm"
                        agent_rows, steps, secs = evaluator.run_lm(actor, greedy=spec is not None and spec.greedy,
                                                                   seed=eval_seed, progress=bar)
                    else:
                        kind = spec.env if spec is not None and spec.env else observation_kind(actor)
                        agent_rows, steps, secs = evaluator.run_predict(actor, kind, deterministic=cfg.deterministic,
                                                                        seed=eval_seed, progress=bar)
                finally:
                    bar.close()
                del actor
                apply_ethics(agent_rows)
                for row in agent_rows:
                    row.update({"agent": entry.name, "builtin": b, "observation": kind, "seed": seed,
                                "eval_seed": eval_seed, "eval_env_steps": steps, "eval_wall_s": secs, **train_info})
                rows += agent_rows
                write_rows()
                log(f"[compare] {entry.name} seed {seed}: reward {np.mean([r['reward'] for r in agent_rows]):.3f} "
                    f"(train {train_info['train_env_steps']} steps, {train_info['train_wall_s']:.0f} s; "
                    f"eval {secs:.0f} s)")
    finally:
        evaluator.close()

    summaries = {e.name: summarize_agent([r for r in rows if r["agent"] == e.name]) for e in entries}
    table = markdown_table(summaries)
    header = (f"# Agent comparison: {cfg.model}, {cfg.dataset} ({cfg.eval_split} split)\n\n"
              f"{len(evaluator.indices)} held-out dialogues x {len(cfg.seeds)} seeds (training seeds {cfg.seeds}, "
              f"evaluation seeds {[cfg.eval_seed_offset + s for s in cfg.seeds]}); training budget "
              f"{cfg.budget_steps} env steps per agent and seed"
              f"{'' if cfg.budget_seconds is None else f' or {cfg.budget_seconds:.0f} s'}; total wall time "
              f"{time.perf_counter() - t_start:.0f} s.\n\n")
    _write(paths["summary.md"], header + table + "\n\nReward and components: mean ± 95% CI over replies. "
           "KL: per reply, to the reference, of the distribution the agent acted from. Costs: per seed.\n\n"
           "![reward curves](curves.png)\n\n![reward components](components.png)\n")
    _write(paths["summary.csv"], csv_text(summaries))
    _write(paths["summary.json"], json.dumps({"config": dataclasses.asdict(cfg) | {"agents": [e.name for e in entries]},
                                              "summaries": summaries}, indent=2, default=_json_default))
    plot_curves(curves, summaries, paths["curves.png"])
    plot_components(summaries, paths["components.png"])
    log(table)
    log(f"[compare] wrote {', '.join(str(p) for p in paths.values())}")
    return {"summaries": summaries, "rows": rows, "curves": curves, "paths": paths, "config": cfg}

"""``dialogue-rl bench ppo``: our PPO iteration against TRL's ``GRPOTrainer`` step and Hugging Face ``generate``, in
one process, on the same model, batch, lengths and reward.

- **ours**: ``agents.ppo.trainer.train`` for ``--warmup + --iterations`` iterations (one update epoch, every layer
  trainable unless ``--layers k``, no evaluations); the per-phase times ``time/generate``, ``time/reward``,
  ``time/score``, ``time/update``, ``time/other`` it logs for each iteration, averaged over the timed ones. Rollout
  tokens/s = reply tokens written / generate time. With several ``--decode`` values (``auto``, ``static``,
  ``dynamic``) or ``--dtype`` values (``auto``, ``autocast``, ``float32``) one row per combination.
- **TRL**: ``GRPOTrainer`` on the same contexts (chat histories), the same reward (``rewards.adapters.to_trl``),
  ``num_generations = --samples``, ``max_completion_length = --max-new-tokens``, ``beta`` 0.04, one update pass
  per generation batch (``per_device_train_batch_size = --num-envs``); time of each optimisation step, after
  ``--warmup`` steps. Skipped (with a note) when ``trl`` is not installed: ``pip install 'dialogue-rl[bench]'``.
- **HF generate**: sampling ``--max-new-tokens`` tokens for the same ``--num-envs`` contexts (left-padded, EOS
  suppressed so every row writes all of them).

Prints a Markdown table (seconds per iteration / step, rollout tokens/s, peak GPU memory on CUDA, ratios ours/TRL
and ours/HF) and writes JSON with ``--out``. On the CPU at tiny sizes (``--model tiny-random``) it runs in seconds;
the figures that matter come from CUDA (``scripts/bench_gpu.sh``: 256 x 64).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from agents.argtypes import positive_int, temperature

PHASES = ("generate", "reward", "score", "update", "other")


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device) -> float | None:
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return None


def _cfg(args, decode: str, dtype: str = "auto"):
    from agents.ppo.config import PPOConfig

    return PPOConfig(model=args.model, dataset=args.dataset, reward=args.reward, device=args.device,
                     max_new_tokens=args.max_new_tokens, max_context_tokens=args.max_context_tokens,
                     num_envs=args.num_envs, samples_per_context=args.samples, num_minibatches=args.minibatches,
                     update_epochs=1, num_layers_unfrozen=args.layers,
                     total_iterations=args.warmup + args.iterations,
                     final_split="", eval_every=0, checkpoint_every=0, logger="none", seed=args.seed,
                     temperature=args.temperature, decode=decode, dtype=dtype)


def bench_ours(args, decode: str, dtype: str = "auto") -> dict:
    """Our PPO iterations through ``train``; the mean per-phase seconds of the timed iterations."""
    from agents.ppo import trainer

    cfg = _cfg(args, decode, dtype)
    _peak_reset(args.device)
    with tempfile.TemporaryDirectory() as out:
        result = trainer.train(cfg, out, progress_bar=False, log=lambda *_: None)
    timed = result["history"][args.warmup:]
    phases = {p: statistics.fmean(h[f"time/{p}"] for h in timed) for p in PHASES}
    tokens = statistics.fmean(h["charts/mean_reply_tokens"] for h in timed) * cfg.num_envs
    return {"name": f"ours ({decode})" if dtype == "auto" else f"ours ({decode}, {dtype})", "seconds": sum(phases.values()), "phases": phases,
            "rollout_tokens_per_s": tokens / max(phases["generate"], 1e-9), "tokens": tokens,
            "peak_gib": _peak_gib(args.device)}


def _contexts(args):
    """The model, tokenizer, TRL prompts (system prompt + chat history, reference reply) and left-padded token
    contexts of ``num_envs / samples`` dialogues, each repeated ``samples`` times."""
    import gymnasium as gym

    import dialogue_env  # noqa: F401
    from agents.collect import collect
    from dialogue_env.models import load_policy

    lm, tok = load_policy(args.model, device=args.device)
    env = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                       model=args.model, dataset=args.dataset, split="train", reward="length",
                       max_new_tokens=1, max_context_tokens=args.max_context_tokens, device=args.device,
                       return_tensors=True)
    n = args.num_envs // args.samples
    indices = np.repeat(np.arange(n) % len(env.unwrapped.dialogues), args.samples)
    ro = collect(env, lm, greedy=True, dialogue_indices=indices)
    # TRL gets the same token contexts: the env's system prompt (system_prompt="auto") + the chat history
    from dialogue_env.core import CUSTOMER_SERVICE_SYSTEM_PROMPT

    system = ([{"role": "system", "content": CUSTOMER_SERVICE_SYSTEM_PROMPT}] if args.dataset == "customer_service"
              else [])
    prompts = [{"prompt": system + list(c), "reference": r} for c, r in zip(ro.contexts, ro.references)]
    return lm, tok, prompts, ro.query_ids, ro.query_mask


def bench_generate(args, lm, ids, mask) -> dict:
    """HF ``generate``: ``max_new_tokens`` sampled tokens for every context, EOS suppressed."""
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if torch.device(args.device).type == "cuda"
           else torch.autocast("cpu", enabled=False))
    eos = lm.generation_config.eos_token_id
    kwargs = dict(input_ids=ids, attention_mask=mask, max_new_tokens=args.max_new_tokens,
                  min_new_tokens=args.max_new_tokens, do_sample=True, temperature=args.temperature, top_k=0,
                  top_p=1.0, pad_token_id=lm.generation_config.pad_token_id or 0,
                  eos_token_id=eos if eos is not None else None)
    times = []
    _peak_reset(args.device)
    with torch.no_grad(), amp:
        for i in range(args.warmup + args.iterations):
            _sync(args.device)
            t0 = time.perf_counter()
            out = lm.generate(**kwargs)
            _sync(args.device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    tokens = (out.shape[1] - ids.shape[1]) * ids.shape[0]
    seconds = statistics.fmean(times)
    return {"name": "HF generate", "seconds": seconds, "phases": {"generate": seconds},
            "rollout_tokens_per_s": tokens / seconds, "tokens": tokens, "peak_gib": _peak_gib(args.device)}


def trl_reward(spec):
    """The env's reward ``spec`` (None: the seed's default, as the env does) as a TRL reward function."""
    import rewards
    from rewards.adapters import to_trl

    return to_trl(rewards.DEFAULT_SPEC if spec is None else spec)


def bench_trl(args, lm, tok, contexts: list) -> dict:
    """TRL's ``GRPOTrainer``: seconds per optimisation step (one generation batch of ``num_envs`` completions)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    rows = contexts[:: args.samples] * (args.warmup + args.iterations + 1)  # TRL samples num_generations of each
    data = Dataset.from_dict({"prompt": [r["prompt"] for r in rows], "reference": [r["reference"] for r in rows]})
    times, starts = [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            _sync(args.device)
            starts.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            _sync(args.device)
            times.append(time.perf_counter() - starts[-1])

    cuda = torch.device(args.device).type == "cuda"
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(output_dir=out, per_device_train_batch_size=args.num_envs, gradient_accumulation_steps=1,
                            num_generations=args.samples, max_completion_length=args.max_new_tokens,
                            temperature=args.temperature, beta=0.04, num_iterations=1,
                            max_steps=args.warmup + args.iterations, learning_rate=1e-6, logging_steps=10**6,
                            save_strategy="no", report_to="none", use_cpu=not cuda, bf16=cuda,
                            seed=args.seed, disable_tqdm=True, dataloader_num_workers=0,
                            shuffle_dataset=False, log_level="error", model_init_kwargs={"dtype": torch.float32})
        model_dir = Path(out) / "model"  # TRL builds its reference model from a path: save ours there
        lm.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        trainer = GRPOTrainer(model=str(model_dir), reward_funcs=trl_reward(args.reward), args=config,
                              train_dataset=data, processing_class=tok, callbacks=[Timer()])
        _peak_reset(args.device)
        trainer.train()
    seconds = statistics.fmean(times[args.warmup:])
    return {"name": "TRL GRPOTrainer", "seconds": seconds, "phases": {}, "rollout_tokens_per_s": None,
            "tokens": args.num_envs * args.max_new_tokens, "peak_gib": _peak_gib(args.device)}


def _row(r: dict) -> str:
    ph = r["phases"]
    cells = [r["name"], f"{r['seconds']:.3f}"] + [f"{ph[p]:.3f}" if p in ph else "-" for p in PHASES]
    tps = r["rollout_tokens_per_s"]
    cells += [(f"{tps:,.0f}" if tps >= 100 else f"{tps:.3g}") if tps else "-", f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"]
    return "| " + " | ".join(cells) + " |"


def run(args, report=lambda row: None) -> dict:
    """Every row of the benchmark; ``report(row)`` is called as each one is done (partial results survive a
    timeout)."""
    torch.manual_seed(args.seed)
    rows, notes = [], []

    def add(row):
        rows.append(row)
        report(row)

    for decode in args.decode.split(","):
        for dtype in args.dtype.split(","):
            add(bench_ours(args, decode.strip(), dtype.strip()))
    lm, tok, contexts, ids, mask = _contexts(args)
    if not args.no_generate:
        add(bench_generate(args, lm, ids, mask))
    if not args.no_trl:
        try:
            import datasets  # noqa: F401
            import trl  # noqa: F401
        except ImportError as err:
            notes.append(f"TRL row skipped ({err}): pip install 'dialogue-rl[bench]' for the GRPOTrainer row")
        else:
            try:
                add(bench_trl(args, lm, tok, contexts))
            except Exception as err:  # TRL's own failure must not cost the rest of a GPU session's results
                if args.strict:
                    raise
                notes.append(f"TRL row failed: {type(err).__name__}: {err}")
    ours = rows[0]
    by = {r["name"]: r for r in rows}
    ratios = {}
    if "TRL GRPOTrainer" in by:
        ratios["ours/TRL step time"] = ours["seconds"] / by["TRL GRPOTrainer"]["seconds"]
    if "HF generate" in by:
        ratios["ours/HF rollout tokens per s"] = ours["rollout_tokens_per_s"] / by["HF generate"]["rollout_tokens_per_s"]
    return {"args": vars(args), "rows": rows, "ratios": ratios, "notes": notes, "environment": environment(args)}


def environment(args) -> dict:
    import transformers

    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version(),
           "torch": torch.__version__, "transformers": transformers.__version__, "device": args.device,
           "cpu_threads": torch.get_num_threads()}
    try:
        import trl

        env["trl"] = trl.__version__
    except ImportError:
        env["trl"] = None
    if torch.device(args.device).type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(args.device)
        env["cuda"] = torch.version.cuda
    return env


def format_result(result: dict) -> str:
    a = result["args"]
    head = (f"bench ppo: model={a['model']} device={a['device']} batch={a['num_envs']} "
            f"(contexts x {a['samples']} samples) new tokens={a['max_new_tokens']} reward={a['reward'] or 'default'} "
            f"trainable layers={'all' if a.get('layers', -1) < 0 else a['layers']}; "
            f"mean of {a['iterations']} after {a['warmup']} warm-up")
    lines = [head, "", "| run | s / iteration | generate | reward | score | update | other | rollout tokens/s | "
             "peak GPU GiB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [_row(r) for r in result["rows"]]
    lines += [""] + [f"{k}: {v:.3f}" for k, v in result["ratios"].items()] + result["notes"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dialogue-rl bench ppo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny-random", help="smollm2-135m, tiny-random, or a local model folder")
    parser.add_argument("--dataset", default="customer_service")
    parser.add_argument("--reward", default="length", help="reward spec: a name, module:attr or a YAML mapping such "
                        "as '{learned: {path: runs/rm_lm}, ethics: 1}' ('default' = the seed's reward)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num-envs", type=positive_int, default=8, help="replies per iteration (CUDA target: 256)")
    parser.add_argument("--samples", type=positive_int, default=4, help="replies per context (TRL's num_generations)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=8, help="reply length (CUDA target: 64)")
    parser.add_argument("--max-context-tokens", type=positive_int, default=256)
    parser.add_argument("--minibatches", type=positive_int, default=1, help="our minibatches per epoch (TRL: one step)")
    parser.add_argument("--temperature", type=temperature, default=1.0)
    parser.add_argument("--iterations", type=positive_int, default=2, help="timed iterations / steps / generate calls")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--decode", default="auto", help="comma-separated decoders for our rows: auto, static, "
                                                         "dynamic (the first is the one compared)")
    parser.add_argument("--dtype", default="auto", help="comma-separated precisions for our rows (one row each): "
                        "auto (float32 on the CPU, bfloat16 autocast on CUDA), autocast (bfloat16 autocast, frozen "
                        "weights stored in bfloat16), float32")
    parser.add_argument("--layers", type=int, default=-1, help="our trainable top layers (num_layers_unfrozen; -1: "
                        "all, as TRL trains; the CPU main job: 2)")
    parser.add_argument("--no-trl", action="store_true", help="skip TRL's GRPOTrainer")
    parser.add_argument("--no-generate", action="store_true", help="skip HF generate")
    parser.add_argument("--strict", action="store_true", help="let a failure of the TRL row stop the benchmark "
                                                               "(default: a note in the table)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if args.reward == "default":
        args.reward = None
    elif args.reward.lstrip().startswith("{"):  # a mapping, as --set reward=... takes it
        from agents.ppo.config import parse_overrides

        args.reward = parse_overrides([f"reward={args.reward}"])["reward"]
    if args.num_envs % args.samples:
        parser.error(f"--num-envs {args.num_envs} must be a multiple of --samples {args.samples}")
    from agents.ppo.config import PPOConfig
    from dialogue_env.models import check_device

    check_device(args.device)  # the benchmark itself touches the device (peak-memory counters) before any model
    for decode in args.decode.split(","):  # every row's config, before minutes of benchmarking
        for dtype in args.dtype.split(","):
            PPOConfig.from_dict(_cfg(args, decode.strip(), dtype.strip()).to_dict())  # a bad value: ConfigError
    result = run(args, report=lambda row: print(f"[bench ppo] {_row(row)}", flush=True))
    print(format_result(result), flush=True)
    if args.out:
        from rewards.utils import atomic_write_text

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(result, indent=2, default=str))
    return 0


__all__ = ["PHASES", "format_result", "main", "run"]

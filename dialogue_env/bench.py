"""``dialogue-rl bench env``: env steps per second of the batched twin against Gymnasium's SyncVectorEnv.

Both run the same Dialogue-v0 configuration side by side in one process, with the same random actions (an
end-of-reply token with probability ``--eos-prob``, else an ordinary token id), so the ratio is what matters on a
noisy machine. The reward defaults to ``length`` so the numbers measure the environment, not a scorer
(``dialogue-rl bench rewards`` measures those).
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np

from rewards.utils import batch_sizes


def _run(env, n_envs, steps, eos_id, eos_prob, low, high, seed=0):
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    actions = [np.where(rng.random(n_envs) < eos_prob, eos_id, rng.integers(low, high, n_envs)) for _ in range(steps)]
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return steps * n_envs / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dialogue-rl bench env", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny-random", help="whose tokenizer/vocabulary (tiny-random, smollm2-135m)")
    parser.add_argument("--num-envs", type=batch_sizes, default=[1, 16, 64, 256], help="comma-separated batch sizes")
    parser.add_argument("--steps", type=int, default=96, help="steps per measurement")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--eos-prob", type=float, default=1 / 24)
    parser.add_argument("--reward", default="length")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sync-max", type=int, default=256, help="skip SyncVectorEnv above this many envs")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    kwargs = dict(model=args.model, reward=args.reward, max_new_tokens=args.max_new_tokens, device=args.device)
    probe = gym.make("dialogue_env/Dialogue-v0", **kwargs)
    tok = probe.unwrapped.tokenizer
    eos_id = tok.convert_tokens_to_ids("<|im_end|>")
    low, high = (40, 120) if args.model == "tiny-random" else (300, 20000)
    rows = []
    print(f"| envs | batched twin (steps/s) | SyncVectorEnv (steps/s) | ratio |   model={args.model} device={args.device}")
    print("|---:|---:|---:|---:|")
    for n in args.num_envs:
        venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
        _run(venv, n, 4, eos_id, args.eos_prob, low, high)  # warm-up
        batched = _run(venv, n, args.steps, eos_id, args.eos_prob, low, high)
        sync = None
        if n <= args.sync_max:
            senv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=n, vectorization_mode="sync", **kwargs)
            _run(senv, n, 4, eos_id, args.eos_prob, low, high)
            sync = _run(senv, n, args.steps, eos_id, args.eos_prob, low, high)
        ratio = f"{batched / sync:.1f}x" if sync else "-"
        print(f"| {n} | {batched:,.0f} | {f'{sync:,.0f}' if sync else '-'} | {ratio} |", flush=True)
        rows.append({"num_envs": n, "batched_steps_per_s": batched, "sync_steps_per_s": sync})
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=2)
    return 0

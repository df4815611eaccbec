"""``dialogue-rl demo``: a causal LM plays ``Dialogue-v0`` episodes (every token is the env's action) and the
contexts, replies and rewards are printed — a quick look at the environment. The replies come from the one rollout
collector (:func:`agents.collect.collect`), all episodes at once; multi-turn episodes (``turns > 1``) show each user
turn the simulator added."""

from __future__ import annotations

import gymnasium as gym
import torch

import dialogue_env  # noqa: F401  (registers the env ids)
from agents.collect import collect
from dialogue_env.models import load_policy


def play_episodes(model="smollm2-135m", dataset="customer_service", split="test", episodes=3, seed=0,
                  max_new_tokens=48, greedy=False, turns=1, reward=None, device="cpu", temperature=0.7, out=print):
    """Play ``episodes`` episodes (sub-env ``i`` seeded with ``seed + i``), print them, return each episode's return."""
    lm, _ = load_policy(model, device=device)
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=episodes, vectorization_mode="vector_entry_point",
                        model=model, dataset=dataset, split=split, reward=reward, max_new_tokens=max_new_tokens,
                        turns=turns, device=device, return_tensors=True)
    try:
        ro = collect(venv, lm, seed=seed, temperature=temperature, greedy=greedy,
                     generator=torch.Generator().manual_seed(seed))
    finally:
        venv.close()
    for ep, records in enumerate(ro.turns):
        out(f"\n=== episode {ep + 1}/{episodes}: {ro.dialogue_ids[ep]} ===")
        shown = 0  # messages of the history already printed
        for rec in records:
            for msg in rec["context"][shown:]:
                out(f"  {msg['role']:>9}: {msg['content']}")
            parts = ", ".join(f"{k}={v:.3f}" for k, v in rec["components"].items())
            out(f"  {'agent':>9}: {rec['response']}")
            out(f"  {'reference':>9}: {rec['reference']}")
            out(f"  reward {rec['reward']:.3f} ({parts})")
            shown = len(rec["context"]) + 1  # the next context repeats this one and the agent's reply
    totals = [float(s) for s in ro.scores]
    out(f"\nmean episode return over {episodes} episodes: {sum(totals) / len(totals):.3f}")
    return totals

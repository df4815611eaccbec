"""Play ``Dialogue-v0`` episodes with a causal LM choosing every token (the env's action) — a quick look at the
environment, its contexts and its rewards. Decoding reuses the KV cache from one token to the next."""

from __future__ import annotations

import gymnasium as gym
import torch

from dialogue_env.models import lm_forward, load_policy


class LMTokenPolicy:
    """Picks the next token of a single env's reply with a causal LM; keeps a KV cache within a reply."""

    def __init__(self, model, temperature: float = 0.7, greedy: bool = False, seed: int = 0):
        self.model = model
        self.temperature = temperature
        self.greedy = greedy
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.device = next(model.parameters()).device
        self.past = None

    def start(self, obs):
        """Begin a new reply: encode the (unpadded) context once."""
        ids = torch.as_tensor(obs["input_ids"])[torch.as_tensor(obs["attention_mask"]).bool()]
        self.past = None
        return self._forward(ids.unsqueeze(0).to(self.device))

    @torch.no_grad()
    def _forward(self, ids):  # ids: (1, T)
        logits, self.past = lm_forward(self.model, ids, cache=self.past)
        return logits[0, -1].float()  # (V,)

    def choose(self, logits) -> int:
        if self.greedy:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / self.temperature, dim=-1).cpu()
        return int(torch.multinomial(probs, 1, generator=self.gen))

    def advance(self, token: int):
        return self._forward(torch.tensor([[token]], device=self.device))


def play_episodes(model="smollm2-135m", dataset="customer_service", split="test", episodes=3, seed=0,
                  max_new_tokens=48, greedy=False, turns=1, reward=None, device="cpu", out=print):
    lm, _ = load_policy(model, device=device)
    env = gym.make("dialogue_env/Dialogue-v0", model=model, dataset=dataset, split=split, reward=reward,
                   max_new_tokens=max_new_tokens, turns=turns, device=device)
    policy = LMTokenPolicy(lm, greedy=greedy, seed=seed)
    totals = []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        out(f"\n=== episode {ep + 1}/{episodes}: {info['dialogue_id']} ({info['intent']}) ===")
        for msg in info["context"]:
            out(f"  {msg['role']:>9}: {msg['content']}")
        logits = policy.start(obs)
        episode_return, done = 0.0, False
        while not done:
            token = policy.choose(logits)
            obs, reward, terminated, truncated, info = env.step(token)
            episode_return += reward
            done = terminated or truncated
            if "response" in info:
                parts = ", ".join(f"{k}={v:.3f}" for k, v in info["reward_components"].items())
                out(f"  {'agent':>9}: {info['response']}")
                out(f"  {'reference':>9}: {info['reference']}")
                out(f"  reward {reward:.3f} ({parts})")
                if not done:  # multi-turn: the simulator added a user turn; show it and re-encode
                    out(f"  {'user':>9}: {env.unwrapped.batch.histories[0][-1]['content']}")
                    logits = policy.start(obs)
                    continue
            if not done:
                logits = policy.advance(token)
        totals.append(episode_return)
    mean = sum(totals) / len(totals)
    out(f"\nmean episode return over {episodes} episodes: {mean:.3f}")
    env.close()
    return totals

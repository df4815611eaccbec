"""PPO over whole conversations (``turns > 1``): what the trainer needs from a multi-turn rollout.

A multi-turn rollout of an LM actor is *interleaved* (:class:`agents.collect.Rollout`): ``response_ids`` holds the
whole conversation after the first context, the agent's tokens (``response_mask`` 1) between the env's tokens (the
end of each turn and the simulated customer's next message, ``response_mask`` 0), and ``token_scores`` holds each
reply's reward on its last token, the outcome reward added on the episode's last agent token. So one trajectory is
one conversation, and the trainer's loop runs unchanged on it:

- :func:`conversation_trunk` runs the frozen trunk once over the whole conversation (the collector's trunk capture
  covers one reply only), giving the states every PPO epoch's top layers read;
- every per-token quantity of the loop is masked by ``response_mask``: the KL penalty and the log-prob ratios, the
  entropy, the value loss, GAE (which skips masked positions, so ``V_{next}`` of a reply's last token is the value
  of the agent's first token of the next turn: the customer's tokens are context, not steps) and the advantage
  whitening. The simulator's tokens have no loss, no KL and no value target;
- :func:`shaped_rewards` puts the per-turn scores where they were earned: ``r_t = -beta * KL_t + score_t``.
"""

from __future__ import annotations

import numpy as np
import torch

from agents.collect import Rollout
from agents.ppo import functional as ppo_f


def multiturn_env_kwargs(cfg) -> dict:
    """The env arguments of a PPO config's multi-turn fields (``turns``, ``user_simulator``, ...)."""
    return {"turns": cfg.turns, "user_simulator": cfg.user_simulator, "simulator_model": cfg.simulator_model,
            "outcome_reward": cfg.outcome_reward}


def conversation_trunk(policy, ro: Rollout) -> torch.Tensor:
    """Trunk states ``(B, Lq + T - 1, H)`` of the rollout's whole token sequence (:meth:`Rollout.sequence`), no
    gradient: the input of :meth:`agents.ppo.policy.PolicyWithValue.policy_head` for a rollout collected without
    ``capture_layer`` (multi-turn)."""
    ids, mask = ro.sequence()
    device = next(policy.parameters()).device
    return policy.trunk(ids.to(device), mask.to(device))


def shaped_rewards(ro: Rollout, scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor,
                   kl_coef: float | torch.Tensor) -> torch.Tensor:
    """Per-token rewards ``(B, T)`` for GAE: ``-kl_coef * KL_t`` on the agent's tokens plus the env's rewards where
    they arrived. ``scores`` (B,) are the episode returns the loop uses (possibly with a baseline subtracted); for a
    one-reply rollout they go on the reply's last token (:func:`ppo_f.token_rewards`); for an interleaved one each
    reply's reward stays on its last token and the baseline's shift ``scores - ro.scores`` goes on the episode's last
    agent token, so a row's rewards still add up to its (baselined) return minus the KL penalty."""
    if ro.token_scores is None:
        return ppo_f.token_rewards(scores, kl, mask, kl_coef)
    token_scores = ro.token_scores.to(kl.device, torch.float32)  # (B, T)
    returns = torch.as_tensor(ro.scores, dtype=torch.float32, device=kl.device)
    shift = scores.to(torch.float32) - returns  # (B,) 0 without a baseline
    dense = ppo_f.token_rewards(shift, kl, mask, kl_coef)  # -beta KL_t, plus the shift on the last agent token
    return dense + token_scores * mask.to(dense.dtype)


def turn_scalars(ro: Rollout, prefix: str = "rewards") -> dict:
    """Logging scalars of a multi-turn rollout: the mean per-turn reward (over every reply of every episode),
    the mean number of agent turns, the mean outcome reward and the resolution rate (share of episodes whose
    outcome is "resolved", when the simulator gives outcomes). Empty for one-reply rollouts."""
    if not ro.interleaved:
        return {}
    per_turn = [rec.get("turn_reward", rec["reward"]) for t in ro.turns for rec in t]
    last = [t[-1] for t in ro.turns if t]
    out = {f"{prefix}/turn_mean": float(np.mean(per_turn)) if per_turn else float("nan"),
           f"{prefix}/turns_per_episode": float(np.mean([len(t) for t in ro.turns])),
           f"{prefix}/outcome_mean": float(np.mean([rec.get("outcome_reward", 0.0) for rec in last]))}
    outcomes = [rec.get("outcome") for rec in last]
    if any(o is not None for o in outcomes):
        out[f"{prefix}/resolution_rate"] = float(np.mean([o == "resolved" for o in outcomes]))
    return out


__all__ = ["conversation_trunk", "multiturn_env_kwargs", "shaped_rewards", "turn_scalars"]

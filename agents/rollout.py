"""Generate replies with a causal LM *through* the batched environment, one token step at a time.

Every agent built on a language model (PPO, the reference-model baselines, evaluation) collects its replies here,
so all of them are scored by the same env and the same reward. The LM's KV cache is reused from one token to
the next: the context is encoded once, then each step feeds only the new token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from dialogue_env.models import lm_step, position_ids


@dataclass
class Rollout:
    """One reply per sub-env. Token tensors are on the env's device."""

    query_ids: torch.Tensor  # (B, Lq) left-padded context
    query_mask: torch.Tensor  # (B, Lq) 1 on real tokens
    response_ids: torch.Tensor  # (B, T) the chosen tokens (after a reply ended: filler, masked out)
    response_mask: torch.Tensor  # (B, T) 1 on the reply's tokens, EOS included
    scores: np.ndarray  # (B,) the env's reward for each reply
    components: dict  # name -> (B,) unweighted component values
    responses: list  # B decoded replies
    contexts: list  # B chat histories
    references: list  # B reference replies (or None)
    dialogue_ids: list  # B dataset ids
    details: list  # B dicts of reward notes
    terminated: np.ndarray  # (B,) True if the reply ended with EOS, False if cut at max_new_tokens
    trunk_states: torch.Tensor | None = None  # (B, Lq + T - 1, H) hidden states entering layer `capture_layer`
    stats: dict = field(default_factory=dict)

    @property
    def lengths(self) -> torch.Tensor:
        return self.response_mask.sum(1)

    def sequence(self):
        """Context + reply minus the last token, with its mask: the input whose logits score every reply token.
        Returns ``(ids (B, Lq+T-1), mask (B, Lq+T-1))``."""
        ids = torch.cat([self.query_ids, self.response_ids[:, :-1]], dim=1)
        mask = torch.cat([self.query_mask, torch.ones_like(self.response_ids[:, :-1])], dim=1)
        return ids, mask


def _filler_token(env) -> int:
    """A token id that is not an end-of-reply token (fed to sub-envs whose reply is over)."""
    eos = set(env.batch.eos_ids)
    return next(i for i in range(3, env.batch.V) if i not in eos)


@torch.no_grad()
def generate_through_env(venv, lm, *, temperature: float = 1.0, greedy: bool = False,
                         generator: torch.Generator | None = None, capture_layer: int | None = None,
                         dialogue_indices=None, share_prefill: bool = True) -> Rollout:
    """Start a new episode in every sub-env of ``venv`` (a ``DialogueVectorEnv``, ``turns=1``) and let ``lm`` write
    each reply token by token through ``venv.step``.

    Sampling is from ``softmax(logits / temperature)`` (``greedy`` takes the argmax). ``capture_layer = j`` keeps
    the hidden states entering decoder layer ``j`` for every position (what ``PolicyWithValue`` calls the trunk
    states). ``dialogue_indices`` picks the dialogues (one per sub-env) instead of the env's seeded draw; a dialogue
    may appear several times (several samples of a reply to the same context): with ``share_prefill`` (default) each
    distinct context is encoded once and its KV cache copied to the sub-envs that hold it.

    Sub-envs whose reply ended are fed a non-EOS filler token until all replies are done, so they start a new
    episode (Gymnasium's next-step autoreset) but never finish it: no reward is computed for it, and the next call
    resets every sub-env anyway.
    """
    env = venv.unwrapped if hasattr(venv, "unwrapped") else venv
    if env.batch.turns != 1:
        raise ValueError("generate_through_env collects one reply per episode: make the env with turns=1")
    B = env.num_envs
    device = env.batch.device
    options = {"reset_mask": np.ones(B, dtype=bool)}
    if dialogue_indices is not None:
        options["dialogue_indices"] = np.asarray(dialogue_indices)
    was_tensor = env.return_tensors
    env.return_tensors = True
    try:
        obs, _ = env.reset(options=options)
        lm_device = next(lm.parameters()).device
        ids, mask = obs["input_ids"], obs["attention_mask"]
        Lq = int(mask.sum(1).max())
        query_ids = ids[:, -Lq:].clone()
        query_mask = mask[:, -Lq:].long().clone()
        attn = query_mask.to(lm_device)
        pos = position_ids(attn)
        kwargs = {"logits_to_keep": 1}  # (B, 1, V): only the next token's logits, not the context's
        if capture_layer is not None:
            kwargs["output_hidden_states"] = True
        # Prefill. Sub-envs that hold the same context (several samples per dialogue) share one prefill: encode
        # each distinct row once, then copy its logits, hidden states and KV cache to every sub-env that has it.
        shared = False
        if share_prefill:
            rows = torch.cat([query_ids, query_mask], dim=1)  # (B, 2 Lq)
            uniq, inverse = torch.unique(rows, dim=0, return_inverse=True)  # (U, 2 Lq), (B,)
            shared = len(uniq) < B
        if shared:
            u_ids, u_mask = uniq[:, :Lq].to(lm_device), uniq[:, Lq:].to(lm_device)
            u_pos = position_ids(u_mask)
            logits, cache, hidden = _forward(lm, u_ids, None, attention_mask=u_mask, position_ids=u_pos, **kwargs)
            inv = inverse.to(lm_device)
            cache.reorder_cache(inv)  # (U, ...) -> (B, ...) on the batch axis
            logits = logits[inv]
            hidden = [h[inv] for h in hidden] if hidden is not None else None
        else:
            logits, cache, hidden = _forward(lm, query_ids.to(lm_device), None, attention_mask=attn, position_ids=pos,
                                             **kwargs)
        captured = [hidden[capture_layer]] if capture_layer is not None else []
        next_pos = pos[:, -1:] + 1
        T = env.batch.max_new_tokens
        filler = _filler_token(env)
        response_ids = torch.full((B, T), filler, dtype=torch.long, device=device)
        response_mask = torch.zeros((B, T), dtype=torch.long, device=device)
        done = np.zeros(B, dtype=bool)
        scores = np.zeros(B)
        terminated = np.zeros(B, dtype=bool)
        responses, contexts, references, dialogue_ids = [""] * B, [None] * B, [None] * B, [None] * B
        details = [{} for _ in range(B)]
        components: dict = {}
        steps = 0
        for t in range(T):
            step_logits = logits[:, -1].float()  # (B, V)
            if greedy:
                action = step_logits.argmax(-1)
            else:
                probs = torch.softmax(step_logits / temperature, dim=-1)
                action = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(lm_device)
            done_t = torch.as_tensor(done, device=lm_device)
            action = torch.where(done_t, torch.full_like(action, filler), action)
            response_ids[:, t] = action.to(device)
            response_mask[:, t] = torch.as_tensor(~done, device=device).long()
            _, rewards, term, trunc, infos = env.step(action.to(device))
            steps += 1
            ended = (term | trunc) & ~done
            for i in np.nonzero(ended)[0]:
                scores[i] = rewards[i]
                terminated[i] = bool(term[i])
                responses[i] = infos["response"][i]
                contexts[i] = infos["context"][i]
                references[i] = infos["reference"][i]
                dialogue_ids[i] = infos["dialogue_id"][i]
                details[i] = _item(infos.get("reward_details", {}), i)
                for name, values in infos["reward_components"].items():
                    if not name.startswith("_"):
                        components.setdefault(name, np.zeros(B))[i] = values[i]
            done |= ended
            if done.all() or t == T - 1:
                break
            attn = torch.cat([attn, torch.ones((B, 1), dtype=attn.dtype, device=lm_device)], dim=1)
            logits, cache, hidden = _forward(lm, action.unsqueeze(1), cache, attention_mask=attn,
                                             position_ids=next_pos, **kwargs)
            next_pos = next_pos + 1
            if capture_layer is not None:
                captured.append(hidden[capture_layer])
        T_used = steps
        response_ids = response_ids[:, :T_used]
        response_mask = response_mask[:, :T_used]
        trunk = torch.cat(captured, dim=1)[:, : Lq + T_used - 1] if capture_layer is not None else None
        return Rollout(query_ids=query_ids, query_mask=query_mask, response_ids=response_ids,
                       response_mask=response_mask, scores=scores, components=components, responses=responses,
                       contexts=contexts, references=references, dialogue_ids=dialogue_ids, details=details,
                       terminated=terminated, trunk_states=trunk, stats={"env_steps": steps * B})
    finally:
        env.return_tensors = was_tensor


def _item(vector_info: dict, i: int) -> dict:
    """Sub-env ``i``'s entries of a Gymnasium vector-info dict (values with their ``_key`` masks)."""
    return {k: v[i] for k, v in vector_info.items()
            if not k.startswith("_") and vector_info.get(f"_{k}", np.zeros(i + 1, bool))[i]}


def _forward(lm, ids, cache, **kwargs):
    """``lm_step`` returning ``(logits, cache, hidden states or None)``."""
    out, cache = lm_step(lm, ids, cache, **kwargs)
    return out.logits, cache, (out.hidden_states if kwargs.get("output_hidden_states") else None)


__all__ = ["Rollout", "generate_through_env"]

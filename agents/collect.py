"""The one rollout collector: every agent writes its replies through the batched environment here.

``collect(venv, actor, ...)`` starts an episode in every sub-env of a batched dialogue env and steps it until every
episode is over, with one of two kinds of actor:

- a **causal language model** (a ``torch.nn.Module``) on ``Dialogue-v0``: it samples each token from
  ``softmax(logits / temperature)`` (or takes the argmax), reusing one batched KV cache
  (:class:`dialogue_env.kvcache.CachedDecoder`): the context is encoded once, each step feeds one token, and in a
  multi-turn episode the next context of a sub-env is encoded and spliced in. Its multi-turn rollouts are
  *interleaved*: ``response_ids`` is the whole conversation after the first context (:class:`ConversationStream`),
  ``response_mask`` marks the agent's tokens, ``token_scores`` holds each reply's reward on its last token;
- an object with a ``runner(venv, generator)`` method that returns its own runner (``start`` / ``act`` /
  ``observe``, e.g. :class:`agents.best_of_n.BestOfN`);
- anything with Stable-Baselines3's ``predict(observation, state, episode_start, deterministic)`` on any of the
  env ids and wrappers (``DialogueTopK-v0`` + ``TopKFeatures`` for SB3 models, ``Dialogue-v0`` itself, ...). Its
  observations are whatever the wrapped env gives, batched; it must return one action per sub-env.

PPO's rollouts, ``dialogue-rl evaluate``, the in-training evaluations, ``dialogue-rl compare`` and the annotation
app's model samples all come from here, so every agent is scored by the same env and reward, and speed work on the
generation loop happens in this one place. The collector reads only the Gymnasium API and the env's documented
public members (``env.unwrapped.context_tokens()``, ``eos_token_ids``, ``vocab_size``, ``max_new_tokens``,
``turns``, ``device``) plus, on ``DialogueTopK-v0``, ``info["token_id"]`` and ``info["ref_logprob"]``.

Sub-envs whose episode is over are fed a non-end-of-reply filler token (LM actors) until every episode is done:
Gymnasium's next-step autoreset starts a new episode there, but it never ends within the collection, so no reward
is computed for it; the next ``collect`` resets every sub-env anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dialogue_env.kvcache import CachedDecoder, static_decode_supported, static_decoder

DECODERS = ("auto", "static", "dynamic")


@dataclass
class Rollout:
    """One episode per sub-env: its tokens (B sub-envs, T steps) and what the env said about it."""

    query_ids: torch.Tensor  # (B, Lq) left-padded starting context
    query_mask: torch.Tensor  # (B, Lq) 1 on real tokens
    response_ids: torch.Tensor  # (B, T) the token written at each step (after the episode ended: filler, masked out)
    response_mask: torch.Tensor  # (B, T) 1 on the agent's tokens, EOS included
    scores: np.ndarray  # (B,) the episode's return: the env's reward for the reply (the sum over turns if turns > 1)
    components: dict  # name -> (B,) unweighted component values of the last reply
    responses: list  # B decoded replies (the last one if turns > 1)
    contexts: list  # B chat histories the (last) reply answered
    references: list  # B reference replies (or None)
    dialogue_ids: list  # B dataset ids
    details: list  # B dicts of reward notes
    terminated: np.ndarray  # (B,) True if the episode ended with EOS, False if cut at max_new_tokens
    single_turn: bool = True  # one reply per episode (turns=1): terminated then says whether the reply was cut off
    trunk_states: torch.Tensor | None = None  # (B, Lq + T - 1, H) hidden states entering layer `capture_layer`
    logprobs: torch.Tensor | None = None  # (B, T) log-prob of each action under the actor, when it says (predict)
    ref_logprobs: torch.Tensor | None = None  # (B, T) reference log-prob of each token, when the env reports it
    turns: list = field(default_factory=list)  # B lists of per-reply records (response, reward, components, ...)
    stats: dict = field(default_factory=dict)
    # Multi-turn episodes of an LM actor (turns > 1): response_ids is then the whole conversation after the first
    # context, the agent's tokens (response_mask 1) interleaved with the env's (the end of each turn and the user's
    # next message, response_mask 0), so that sequence() is the token stream the policy wrote in.
    interleaved: bool = False
    token_scores: torch.Tensor | None = None  # (B, T) each reply's reward on its last token (+ outcome on the last)

    @property
    def lengths(self) -> torch.Tensor:
        return self.response_mask.sum(1)

    def sequence(self):
        """Context + reply minus the last token, with its mask: the input whose logits score every reply token.
        Returns ``(ids (B, Lq+T-1), mask (B, Lq+T-1))``. One reply per episode (``turns=1``), or an interleaved
        multi-turn rollout (the whole conversation; ``response_mask`` picks the agent's tokens)."""
        if not self.interleaved and any(len(t) > 1 for t in self.turns):
            raise ValueError("Rollout.sequence() needs one reply per episode; this rollout has multi-turn episodes")
        ids = torch.cat([self.query_ids, self.response_ids[:, :-1]], dim=1)
        mask = torch.cat([self.query_mask, torch.ones_like(self.response_ids[:, :-1])], dim=1)
        return ids, mask


# ------------------------------------------------------------------------------------------------------- actors
def sample_tokens(logits: torch.Tensor, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row from ``softmax(logits / temperature)`` on the logits' device, with no host round trip:
    the exponential race (Gumbel-max in another form), ``argmax_v p_v / E_v`` with ``E_v ~ Exp(1)`` drawn by
    ``generator`` (a generator on the logits' device, or None for torch's default one). ``(B, V)`` -> ``(B,)``."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (B, V)
    race = torch.empty_like(probs).exponential_(generator=generator).clamp_(min=torch.finfo(probs.dtype).tiny)
    return (probs / race).argmax(-1)


def device_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """``generator`` if it lives on ``device`` (or is None), else a generator on ``device`` seeded by one draw from
    it: seeded runs stay reproducible when a CPU generator drives sampling on the GPU."""
    device = torch.device(device)
    if generator is None or generator.device.type == device.type:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


class LMActor:
    """A causal LM choosing every token of ``Dialogue-v0``, with one batched KV cache.

    ``decode``: ``"dynamic"`` (:class:`~dialogue_env.kvcache.CachedDecoder`, any number of turns), ``"static"``
    (:class:`~dialogue_env.kvcache.StaticDecoder`: static buffers, one CUDA graph per step on CUDA; one reply per
    episode) or ``"auto"`` (static on CUDA when the model and ``turns`` allow it, else dynamic). Sampling: on the CPU
    ``torch.multinomial`` with the CPU ``generator`` (bit for bit as before, so CPU resumes are exact); on another
    device :func:`sample_tokens` with a generator on that device (:func:`device_generator`)."""

    observes_tokens = True
    writes_tokens = True  # a multi-turn rollout of it is interleaved (the token stream it wrote in)

    def __init__(self, lm, num_envs: int, *, temperature: float = 1.0, greedy: bool = False,
                 generator: torch.Generator | None = None, capture_layer: int | None = None,
                 share_prefill: bool = True, decode: str = "dynamic", max_new_tokens: int | None = None):
        if temperature <= 0 and not greedy:
            raise ValueError(f"temperature={temperature} must be > 0 (or use greedy decoding)")
        if decode not in DECODERS:
            raise ValueError(f"decode={decode!r}: use one of {', '.join(DECODERS)}")
        device = next(lm.parameters()).device
        if decode == "auto":
            decode = "static" if device.type == "cuda" and max_new_tokens and static_decode_supported(lm) \
                else "dynamic"
        if decode == "static":
            if not max_new_tokens:
                raise ValueError("decode='static' needs max_new_tokens (the size of the key/value buffers)")
            self.decoder = static_decoder(lm, num_envs, max_new_tokens, hidden_layer=capture_layer)
        else:
            self.decoder = CachedDecoder(lm, num_envs, hidden_layer=capture_layer)
        self.decode = decode
        if device.type != "cpu" and not hasattr(generator, "multinomial"):  # a RowSampler keeps its CPU generators
            generator = device_generator(generator, device)
        self.temperature, self.greedy, self.generator = temperature, greedy, generator
        self.capture = capture_layer is not None
        self.share = share_prefill
        self.captured: list[torch.Tensor] = []
        self.logits: torch.Tensor | None = None  # (B, V) next-token logits of every row

    def start(self, ids: torch.Tensor, mask: torch.Tensor, infos=None) -> None:
        rows = np.arange(len(ids))
        self.logits, hidden = self.decoder.prefill(rows, ids, mask, share=self.share)
        self.captured = [hidden] if self.capture else []

    def act(self, obs, filler: int, done: np.ndarray):
        logits = self.logits.float()  # (B, V)
        if self.greedy:
            action = logits.argmax(-1)
        elif logits.device.type == "cpu":
            probs = torch.softmax(logits / self.temperature, dim=-1)
            if hasattr(self.generator, "multinomial"):  # one generator per row (agents.ppo.distributed.RowSampler)
                action = self.generator.multinomial(probs)
            else:
                action = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
        elif hasattr(self.generator, "multinomial"):
            action = self.generator.multinomial(torch.softmax(logits / self.temperature, dim=-1)).to(logits.device)
        else:
            action = sample_tokens(logits, self.temperature, self.generator)
        done_t = torch.as_tensor(done).to(action.device, non_blocking=True)
        return torch.where(done_t, torch.full_like(action, filler), action), None

    def observe(self, tokens: torch.Tensor, active: np.ndarray, new_context: np.ndarray, env, infos=None) -> None:
        """Feed the tokens just written; encode the new context of sub-envs whose next turn began."""
        self.logits, hidden = self.decoder.advance(tokens, torch.as_tensor(active))
        if self.capture:
            self.captured.append(hidden)
        rows = np.nonzero(new_context)[0]
        if rows.size:
            ids, mask = env.context_tokens(rows)
            logits, _ = self.decoder.prefill(rows, ids, mask)
            self.logits[torch.as_tensor(rows, device=self.logits.device)] = logits


class PredictActor:
    """Anything with SB3's ``predict(observation, state=None, episode_start=None, deterministic=False)``; its
    ``action_log_prob(observation, actions, deterministic)`` (or SB3's own, for SB3 models) gives the log-prob of
    the chosen actions when it has one."""

    observes_tokens = False

    def __init__(self, agent, venv, *, deterministic: bool = True):
        check_agent_space(agent, venv)
        self.agent, self.deterministic = agent, deterministic
        self.space = venv.single_action_space
        self.state, self.episode_start = None, None

    def start(self, ids, mask, infos=None) -> None:
        self.state, self.episode_start = None, np.ones(len(ids), dtype=bool)

    def act(self, obs, filler: int, done: np.ndarray):
        n = len(done)
        actions, self.state = self.agent.predict(obs, state=self.state, episode_start=self.episode_start,
                                                 deterministic=self.deterministic)
        actions = as_actions(actions, n, self.space)
        lp = action_log_prob(self.agent, obs, actions, self.deterministic)
        logp = None if lp is None else torch.as_tensor(np.asarray(lp, dtype=np.float64).reshape(n)).float()
        return actions, logp

    def observe(self, tokens, active, new_context, env, infos=None) -> None:
        self.episode_start = np.zeros(len(active), dtype=bool)


def as_actions(actions, n: int, space) -> np.ndarray:
    """``predict``'s output as ``(n,)`` int64 actions inside ``space``, or a clear error."""
    a = np.asarray(actions)
    if a.size != n:
        raise ValueError(f"predict returned {a.size} action(s) for a batch of {n} observations; an agent's predict "
                         f"must return one action per row of the batch (as SB3 models do for VecEnv observations)")
    a = a.reshape(n)
    if a.dtype.kind == "f":
        a = np.round(a)
    a = a.astype(np.int64)
    if (a < 0).any() or (a >= space.n).any():
        raise ValueError(f"predict returned actions {a.tolist()} outside the action space Discrete({space.n})")
    return a


def check_agent_space(agent, venv) -> None:
    """An agent that declares an ``observation_space`` must match the env's single observation shape."""
    space = getattr(agent, "observation_space", None)
    expected = venv.single_observation_space
    if space is None or not hasattr(space, "shape") or space.shape is None:
        return
    if space.shape != expected.shape:
        raise ValueError(f"agent expects observations of shape {space.shape} but this env gives {expected.shape} "
                         f"(model, k or wrapper differ from the ones it was trained with)")


def action_log_prob(agent, obs, actions, deterministic: bool):
    """``log pi(a | s)`` of the agent's actions: its own ``action_log_prob``, SB3's for SB3 models, 0 for a
    deterministic agent (a point mass), else None (unknown)."""
    if hasattr(agent, "action_log_prob"):
        return agent.action_log_prob(obs, actions, deterministic=deterministic)
    from stable_baselines3.common.base_class import BaseAlgorithm

    if isinstance(agent, BaseAlgorithm):
        from agents.sb3 import sb3_action_log_prob

        return sb3_action_log_prob(agent, obs, actions, deterministic)
    return np.zeros(len(actions)) if deterministic else None


def filler_token(env) -> int:
    """A token id that does not end a reply (fed to sub-envs whose episode is over)."""
    eos = set(env.eos_token_ids)
    return next(i for i in range(3, env.vocab_size) if i not in eos)


# ---------------------------------------------------------------------------------------------------- collector
@torch.no_grad()
def collect(venv, actor, *, dialogue_indices=None, seed: int | None = None, temperature: float = 1.0,
            greedy: bool = False, generator: torch.Generator | None = None, deterministic: bool = True,
            capture_layer: int | None = None, share_prefill: bool = True, decode: str = "auto") -> Rollout:
    """Run one episode in every sub-env of ``venv`` with ``actor`` and return the :class:`Rollout`.

    Args:
        venv: a batched dialogue env (``gym.make_vec(..., vectorization_mode="vector_entry_point")``), possibly
            wrapped (``TopKFeaturesVector``); every sub-env starts a new episode.
        actor: a causal LM (token envs) or an object with SB3's ``predict``.
        dialogue_indices: one dataset index per sub-env (repeats allowed: several samples of one dialogue), else
            the env's seeded draw. ``seed`` is passed to ``reset``.
        temperature / greedy / generator: LM sampling from ``softmax(logits / temperature)`` with a
            ``torch.Generator`` (argmax with ``greedy``), or an object whose ``multinomial(probs (B, V)) -> (B,)``
            draws each row from its own generator (``agents.ppo.distributed.RowSampler``). ``capture_layer = j``
            keeps the hidden states entering decoder layer ``j`` at every position (``turns=1``): PPO's trunk
            states. ``share_prefill``: sub-envs
            holding the same context are encoded once and the KV cache copied.
        deterministic: passed to ``predict``.
        decode: the LM actor's decoder (:class:`LMActor`): ``"auto"`` (static buffers and a CUDA graph on CUDA for
            one-reply episodes, the dynamic cache otherwise), ``"static"`` or ``"dynamic"``.

    ``Rollout.stats`` holds ``env_steps`` and ``reward_seconds`` (time spent in the env's reward calls, part of the
    collection's wall time).
    """
    env = venv.unwrapped
    B = venv.num_envs
    if hasattr(actor, "runner"):  # an actor that brings its own runner (agents.best_of_n.BestOfN)
        runner: Any = actor.runner(venv, generator=generator)
    elif isinstance(actor, torch.nn.Module):
        if not hasattr(venv, "single_action_space") or venv.single_action_space.n != env.vocab_size:
            raise ValueError("a language-model actor writes token ids: collect it on dialogue_env/Dialogue-v0 "
                             "(an agent with predict() can use DialogueTopK-v0)")
        if capture_layer is not None and env.turns != 1:
            raise ValueError("capture_layer (trunk states for PPO) needs one reply per episode: make the env with "
                             "turns=1")
        if decode == "static" and env.turns != 1:
            raise ValueError("decode='static' needs one reply per episode (turns=1); use decode='dynamic'")
        runner: Any = LMActor(actor, B, temperature=temperature, greedy=greedy, generator=generator,
                              capture_layer=capture_layer, share_prefill=share_prefill,
                              decode=decode if env.turns == 1 else "dynamic", max_new_tokens=env.max_new_tokens)
    elif hasattr(actor, "predict"):
        runner = PredictActor(actor, venv, deterministic=deterministic)
    else:
        raise TypeError(f"actor {type(actor).__name__} is neither a causal language model (torch.nn.Module) nor an "
                        f"agent with SB3's predict(observation, state, episode_start, deterministic)")
    options = {"reset_mask": np.ones(B, dtype=bool)}
    if dialogue_indices is not None:
        options["dialogue_indices"] = np.asarray(dialogue_indices)
    obs, reset_infos = venv.reset(seed=seed, options=options)
    reward_seconds = getattr(env, "reward_seconds", 0.0)
    query_ids, query_mask = env.context_tokens()  # (B, Lq)
    runner.start(query_ids, query_mask, reset_infos)
    filler = filler_token(env)
    limit = env.max_new_tokens * env.turns  # an episode has at most this many agent steps
    tokens_t, live_t, logp_t, ref_t = [], [], [], []
    done = np.zeros(B, dtype=bool)
    scores, terminated = np.zeros(B), np.zeros(B, dtype=bool)
    turns: list[list[dict]] = [[] for _ in range(B)]
    known_logp = True
    steps = 0
    stream = ConversationStream(B) if getattr(runner, "writes_tokens", False) and env.turns > 1 else None
    while True:
        actions, logp = runner.act(obs, filler, done)
        obs, rewards, term, trunc, infos = venv.step(actions)
        steps += 1
        live = ~done
        tokens = infos["token_id"] if "token_id" in infos else actions
        tokens = torch.as_tensor(np.asarray(tokens.cpu() if torch.is_tensor(tokens) else tokens)).long()
        tokens_t.append(torch.where(torch.as_tensor(live), tokens, torch.full_like(tokens, filler)))
        live_t.append(torch.as_tensor(live))
        if logp is None:
            known_logp = False
        else:
            logp_t.append(logp)
        if "ref_logprob" in infos:
            ref_t.append(torch.as_tensor(np.asarray(infos["ref_logprob"], dtype=np.float32)))
        term, trunc = np.asarray(term, dtype=bool), np.asarray(trunc, dtype=bool)
        reply_end = np.asarray(infos.get("_response", np.zeros(B, dtype=bool)), dtype=bool) & live
        for i in np.nonzero(reply_end)[0]:
            record = _reply_record(infos, i, float(rewards[i]))
            turns[i].append(record)
            scores[i] += record["reward"]
        over = (term | trunc) & live
        if stream is not None:
            stream.add(tokens_t[-1], live, reply_end, rewards, infos)
        terminated |= term & live
        done |= over
        if done.all() or steps >= limit:
            break
        runner.observe(tokens_t[-1], ~done, reply_end & ~over, env, infos)
    T = steps
    response_ids = torch.stack(tokens_t, dim=1).to(env.device)  # (B, T)
    response_mask = torch.stack(live_t, dim=1).long().to(env.device)  # (B, T)
    token_scores = None
    if stream is not None:  # the whole conversation: agent tokens interleaved with the env's
        response_ids, response_mask, token_scores = (x.to(env.device) for x in stream.tensors(filler))
    last = [t[-1] if t else {} for t in turns]
    names: list[str] = []
    for rec in last:
        names += [k for k in rec.get("components", {}) if k not in names]
    components = {k: np.asarray([rec.get("components", {}).get(k, 0.0) for rec in last]) for k in names}
    trunk = None
    if isinstance(runner, LMActor) and runner.capture:
        Lq = query_ids.shape[1]
        trunk = torch.cat(runner.captured, dim=1)[:, : Lq + T - 1]
    return Rollout(
        query_ids=query_ids, query_mask=query_mask, response_ids=response_ids, response_mask=response_mask,
        scores=scores, components=components, responses=[rec.get("response", "") for rec in last],
        contexts=[rec.get("context") for rec in last], references=[rec.get("reference") for rec in last],
        dialogue_ids=[rec.get("dialogue_id") for rec in last], details=[rec.get("details", {}) for rec in last],
        terminated=terminated, trunk_states=trunk,
        logprobs=torch.stack(logp_t, dim=1) if known_logp and logp_t else None,
        ref_logprobs=torch.stack(ref_t, dim=1) if len(ref_t) == T else None,
        turns=turns, stats={"env_steps": steps * B,
                             "reward_seconds": getattr(env, "reward_seconds", 0.0) - reward_seconds},
        interleaved=stream is not None, token_scores=token_scores, single_turn=env.turns == 1)


class ConversationStream:
    """The token stream of B multi-turn episodes after their first context: every agent token, then at each reply
    that does not end the episode the env's ``info["user_token_ids"]`` (the end of the turn and the user's next
    message, up to the next generation prompt), and each step reward on the token that earned it. This is exactly
    the window ``Dialogue-v0`` shows the policy for its next reply (as long as ``max_context_tokens`` does not cut
    it)."""

    def __init__(self, B: int):
        self.ids: list[list[int]] = [[] for _ in range(B)]
        self.agent: list[list[int]] = [[] for _ in range(B)]
        self.scores: list[list[float]] = [[] for _ in range(B)]

    def add(self, tokens: torch.Tensor, live: np.ndarray, reply_end: np.ndarray, rewards, infos: dict) -> None:
        next_ids = infos.get("user_token_ids")
        has_next = infos.get("_user_token_ids", np.zeros(len(live), dtype=bool))
        for i in np.nonzero(live)[0]:
            self.ids[i].append(int(tokens[i]))
            self.agent[i].append(1)
            self.scores[i].append(float(rewards[i]) if reply_end[i] else 0.0)
            if reply_end[i] and has_next[i]:
                extra = [int(t) for t in next_ids[i]]
                self.ids[i] += extra
                self.agent[i] += [0] * len(extra)
                self.scores[i] += [0.0] * len(extra)

    def tensors(self, filler: int):
        """``(ids, agent mask, scores)``, each (B, T), right-padded (filler, 0, 0)."""
        T = max(len(x) for x in self.ids)
        ids = torch.full((len(self.ids), T), filler, dtype=torch.long)
        mask = torch.zeros((len(self.ids), T), dtype=torch.long)
        scores = torch.zeros((len(self.ids), T), dtype=torch.float32)
        for i, (x, a, r) in enumerate(zip(self.ids, self.agent, self.scores)):
            ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
            mask[i, :len(a)] = torch.tensor(a, dtype=torch.long)
            scores[i, :len(r)] = torch.tensor(r, dtype=torch.float32)
        return ids, mask, scores


def _reply_record(infos: dict, i: int, reward: float) -> dict:
    """Sub-env ``i``'s reply-end entries of a Gymnasium vector-info dict."""

    def item(key, default=None):
        mask = infos.get(f"_{key}")
        return infos[key][i] if key in infos and (mask is None or mask[i]) else default

    return {"response": item("response", ""), "reward": reward,
            "components": {k: float(v) for k, v in item_dict(infos.get("reward_components", {}), i).items()},
            "details": item_dict(infos.get("reward_details", {}), i), "context": item("context"),
            "reference": item("reference"), "dialogue_id": item("dialogue_id"), "turn": item("turn"),
            "turn_reward": item("turn_reward", reward), "outcome": item("outcome"),
            "outcome_reward": item("outcome_reward", 0.0)}


def item_dict(vector_info: dict, i: int) -> dict:
    """Sub-env ``i``'s entries of a vector-info dict (values with their ``_key`` masks), nested dicts included (the
    ethics gate's ``reward_details["gate"]`` is one)."""
    return {k: item_dict(v, i) if isinstance(v, dict) else v[i] for k, v in vector_info.items()
            if not k.startswith("_") and vector_info.get(f"_{k}", np.ones(i + 1, bool))[i]}


__all__ = ["ConversationStream", "LMActor", "PredictActor", "Rollout", "action_log_prob", "as_actions", "check_agent_space", "collect"]

"""``dialogue_env/DialogueUtterance-v0``: one step is one whole agent reply (a ``Text`` action), and its batched twin.

The same dialogue state machine as ``Dialogue-v0`` (:class:`dialogue_env.core.DialogueBatch`): the same datasets,
reward modules, user simulators (replay, a callable, or the LM customer) and per-turn / outcome rewards; only the
action is the reply's text instead of its next token, and the observation is the conversation rendered as text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from .envs import DialogueEnv, DialogueVectorEnv, _pick_dialogue, _reply_info, _reset_info, simulator_seeds


class ChatText(spaces.Text):
    """A ``Text`` space of any Unicode string of ``min_length`` to ``max_length`` characters (a conversation holds
    punctuation, newlines, accents and CJK). ``sample()`` draws from ``charset`` (letters, digits, space and common
    punctuation by default); ``contains`` accepts any string of the right length."""

    def __init__(self, max_length: int, min_length: int = 0, seed=None):
        charset = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,?!'"
        super().__init__(max_length=max_length, min_length=min_length, charset=charset, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"ChatText({self.min_length}, {self.max_length})"


OBS_MAX_CHARS = 65536


def render_conversation(history) -> str:
    """A chat history as the observation text: one ``role: content`` line per message (the last ``OBS_MAX_CHARS``
    characters if longer)."""
    text = "\n".join(f"{m['role']}: {m['content']}" for m in history)
    return text[-OBS_MAX_CHARS:]


def check_reply(action, max_chars: int, where: str = "") -> str:
    if not isinstance(action, str):
        raise TypeError(f"action{where} must be the reply text (a str), got {type(action).__name__} {action!r:.60}")
    if len(action) > max_chars:
        raise ValueError(f"action{where} is {len(action)} characters; the action space allows up to {max_chars} "
                         f"(max_reply_chars={max_chars})")
    return action.strip()


class DialogueUtteranceEnv(DialogueEnv):
    """Dialogue as an utterance-level MDP: the agent writes the support agent's whole reply in one step.

    ## Description
    Each episode takes a dialogue from a dataset, shows the conversation so far as text, and takes the agent's reply
    as the action. The reward module scores the reply when it is made; with ``turns > 1`` a user simulator (the
    dataset's replay, a callable, or ``user_simulator="lm"``: a local LM playing the customer) writes the customer's
    next message and the episode goes on. The env for agents that write whole replies: best-of-n, an LLM behind an
    API, RLOO/GRPO-style trainers. It holds no policy and no KL term.

    ## Action space
    ``ChatText(0, max_reply_chars)`` (a ``gymnasium.spaces.Text``): the reply, any string of at most
    ``max_reply_chars`` characters; leading and trailing whitespace is stripped. A non-string or longer action
    raises.

    ## Observation space
    ``ChatText(0, 65536)``: the conversation so far, one ``role: content`` line per message (no system prompt),
    ending with the customer's message the agent answers. The same history as a message list is in
    ``info["context"]``.

    ## Rewards
    Every step's reward is the reward module's score of the reply (``info["turn_reward"]``, components in
    ``info["reward_components"]``), plus, on the episode's last step, the outcome reward (``info["outcome_reward"]``,
    ``"resolution"`` by default with the LM customer: 1 if it said the problem was resolved). ``info["turn_rewards"]``
    lists every reply's reward so far, so ``sum(turn_rewards) + outcome_reward`` is the episode's return.

    ## Episode end
    ``terminated`` after the ``turns``-th reply, or earlier when the simulator ends the conversation (the LM customer
    says ``[RESOLVED]`` or ``[GAVE UP]``; a callable returns None; the replayed dialogue has no more user turns).
    ``truncated`` is never set.

    ## Info
    Reset: ``context``, ``reference``, ``dialogue_id``, ``intent``, ``turn`` = 0, ``context_truncated``. Every step:
    ``response``, ``reward_components``, ``reward_details``, ``context`` (the history it answered), ``reference``,
    ``turn``, ``turn_reward``, ``turn_rewards``; the last step adds ``outcome`` ("resolved", "gave_up" or None),
    ``outcome_reward`` and ``outcome_components``.

    ## Arguments
    Those of ``Dialogue-v0`` (``model`` names the tokenizer whose chat template the simulators' and rewards'
    bookkeeping share; ``dataset``, ``split``, ``reward``, ``turns``, ``system_prompt``, ``user_simulator``
    ("replay", "lm" or a callable), ``outcome_reward`` ("auto": "resolution" with the LM customer, else none; a
    reward spec or None), ``simulator_model`` (the LM customer's model, "smollm2-135m"), ``device``,
    ``render_mode``), without the token ones, plus ``max_reply_chars`` (2000).

    ## Version history
    - v0: first release.
    """

    def __init__(self, model="smollm2-135m", dataset="customer_service", split="train", reward=None, turns=1,
                 system_prompt="auto", user_simulator="replay", outcome_reward="auto", simulator_model="smollm2-135m",
                 max_reply_chars=2000, max_context_tokens=512, device="cpu", render_mode=None, tokenizer=None):
        self.max_reply_chars = int(max_reply_chars)
        super().__init__(model=model, dataset=dataset, split=split, reward=reward, max_new_tokens=1,
                         max_context_tokens=max_context_tokens, turns=turns, system_prompt=system_prompt,
                         user_simulator=user_simulator, device=device, render_mode=render_mode, tokenizer=tokenizer,
                         outcome_reward=outcome_reward, simulator_model=simulator_model)
        self._final = None

    def _make_spaces(self):
        return ChatText(OBS_MAX_CHARS), ChatText(self.max_reply_chars)

    def reset(self, *, seed=None, options=None):
        self._final = None
        return super().reset(seed=seed, options=options)

    def _obs(self):
        return render_conversation(self._final if self._final is not None else self.batch.histories[0])

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("the episode is over (or never started): call env.reset() before env.step()")
        reply = check_reply(action, self.max_reply_chars)
        end = self.batch.conclude_replies(np.zeros(1, dtype=np.int64), [reply], [True])
        info = _reply_info(self.batch, end, 0)
        terminated = bool(end.episode_over[0])
        if terminated:
            self._final = end.contexts[0] + [{"role": "assistant", "content": reply}]
        self._needs_reset = terminated
        return self._obs(), float(end.total[0]), terminated, False, info

    def render(self):
        if self.render_mode != "ansi":
            return None
        return self._obs() + "\n"


class DialogueUtteranceVectorEnv(DialogueVectorEnv):
    """``num_envs`` copies of ``DialogueUtterance-v0`` stepped together: one reward call scores every reply of a
    step, one batched call to the LM customer writes every customer message.

    Made by ``gym.make_vec("dialogue_env/DialogueUtterance-v0", num_envs=N, vectorization_mode="vector_entry_point",
    ...)`` with the single env's arguments. Actions: a sequence of ``N`` strings; observations: a tuple of ``N``
    strings. Seeding, ``reset`` options and Gymnasium 1.x next-step autoreset are those of ``Dialogue-v0``'s twin:
    with the same seeds and actions every sub-env's trajectory equals a single ``DialogueUtterance-v0``'s.
    """

    def __init__(self, num_envs: int = 1, model="smollm2-135m", dataset="customer_service", split="train",
                 reward=None, turns=1, system_prompt="auto", user_simulator="replay", outcome_reward="auto",
                 simulator_model="smollm2-135m", max_reply_chars=2000, max_context_tokens=512, device="cpu",
                 render_mode=None, tokenizer=None):
        self.max_reply_chars = int(max_reply_chars)
        super().__init__(num_envs, model=model, dataset=dataset, split=split, reward=reward, max_new_tokens=1,
                         max_context_tokens=max_context_tokens, turns=turns, system_prompt=system_prompt,
                         user_simulator=user_simulator, device=device, render_mode=render_mode, tokenizer=tokenizer,
                         outcome_reward=outcome_reward, simulator_model=simulator_model)
        self._final: list = [None] * self.num_envs

    def _make_spaces(self):
        return ChatText(OBS_MAX_CHARS), ChatText(self.max_reply_chars)

    def _observation(self):
        return tuple(render_conversation(f if f is not None else h) for f, h in zip(self._final, self.batch.histories))

    def reset(self, *, seed=None, options=None):
        mask = np.ones(self.num_envs, dtype=bool) if not options or "reset_mask" not in options else None
        out = super().reset(seed=seed, options=options)
        if mask is None:
            mask = np.asarray(options["reset_mask"]).astype(bool)
        for r in np.nonzero(mask)[0]:
            self._final[r] = None
        return self._observation(), out[1]

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if isinstance(actions, str) or len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} replies (one str per sub-env), got {actions!r:.80}")
        infos: dict = {}
        resetting = np.nonzero(self._autoreset)[0]
        if resetting.size:
            chosen = [_pick_dialogue(self.batch, self._rngs[r], None) for r in resetting]
            self.batch.reset_rows(resetting, chosen, simulator_seeds(self.batch, [self._rngs[r] for r in resetting]))
            for r in resetting:
                self._final[r] = None
                infos = self._add_info(infos, _reset_info(self.batch, int(r)), int(r))
        rows = np.nonzero(~self._autoreset)[0]
        replies = [check_reply(actions[r], self.max_reply_chars, f"[{r}]") for r in rows]
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        if rows.size:
            end = self.batch.conclude_replies(rows, replies, np.ones(rows.size, dtype=bool))
            rewards[rows] = end.total
            terminated[rows] = end.episode_over
            for j, r in enumerate(rows):
                if end.episode_over[j]:
                    self._final[r] = end.contexts[j] + [{"role": "assistant", "content": replies[j]}]
                infos = self._add_info(infos, _reply_info(self.batch, end, j), int(r))
        truncated = np.zeros(self.num_envs, dtype=bool)
        self._autoreset = terminated.copy()
        return self._observation(), rewards, terminated, truncated, infos

    def render(self):
        if self.render_mode != "ansi":
            return None
        return "".join(f"--- env {i} ---\n{text}\n" for i, text in enumerate(self._observation()))


__all__ = ["ChatText", "DialogueUtteranceEnv", "DialogueUtteranceVectorEnv", "render_conversation"]

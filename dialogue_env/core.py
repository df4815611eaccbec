"""The batched dialogue state machine shared by ``Dialogue-v0`` and its vector twin.

``DialogueBatch`` holds ``N`` dialogues as tensors on one device: the left-padded token window ``ids`` (N, L), its
``mask`` (N, L), the number of tokens generated in the current reply, the dialogue index, the reply slot and the
turn. One ``step(actions)`` appends one token to every dialogue with tensor operations only. Python touches a
dialogue only when its reply ends (decode the reply, score it, build the next context), and those are batched:
one tokenizer call and one reward call for all dialogues whose replies ended on that step.

Layout of a row (L = max_context_tokens + max_new_tokens)::

    [pad pad ... pad | chat-templated context (<= max_context_tokens) | reply tokens so far]
                                                                          ^ newest token at ids[:, -1]

Appending a token shifts the row left by one; the context is at most ``max_context_tokens`` long, so a reply of up to
``max_new_tokens`` never pushes real tokens out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from rewards.utils import ConfigError, ConfigTypeError

CUSTOMER_SERVICE_SYSTEM_PROMPT = (
    "You are a customer service agent for Brightline, a mobile network and electronics shop. "
    "Reply politely, helpfully and briefly."
)


@dataclass
class ReplyEnd:
    """What happened on a step where some dialogues finished a reply (index arrays are into the batch)."""

    rows: np.ndarray  # (M,) batch rows whose reply ended on this step
    responses: list  # M decoded replies
    contexts: list  # M chat histories the replies answered
    references: list  # M dataset reference replies (or None)
    total: np.ndarray  # (M,) reward
    components: dict  # name -> (M,) unweighted component values
    details: list  # M dicts of per-item notes from the reward (e.g. the ethics reason)
    episode_over: np.ndarray  # (M,) bool: the episode ended with this reply
    terminated: np.ndarray  # (M,) bool: ended by EOS on the last turn
    truncated: np.ndarray  # (M,) bool: cut at max_new_tokens on the last turn
    turn_total: np.ndarray | None = None  # (M,) the reply's own reward (total minus the outcome reward)
    outcomes: list | None = None  # M simulator outcomes ("resolved" / "gave_up" / None) of episodes that ended
    outcome_total: np.ndarray | None = None  # (M,) outcome reward (0 where the episode goes on or none is set)
    outcome_components: dict | None = None  # name -> (M,) unweighted outcome-reward components
    next_ids: list | None = None  # M token lists appended after the reply (None where the episode ended)


def int_arg(name: str, value, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; a float, string or bool is a ``ConfigTypeError`` (a ``TypeError``) naming
    the argument, a smaller value a ``ConfigError`` (a ``ValueError``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        hint = f"; pass e.g. {name}={max(minimum, round(value))}" if isinstance(value, float) and np.isfinite(value) else ""
        raise ConfigTypeError(f"{name}={value!r} must be an integer, got {type(value).__name__}{hint}")
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return int(value)


def integer_array(actions, what: str) -> np.ndarray:
    """``actions`` as a numpy integer array; a string, None, a non-integral float or any other non-number is a
    ``TypeError`` / ``ValueError`` that names the bad value and says what an action is (``what``)."""
    a = np.asarray(actions)
    if a.dtype.kind in "iub":
        return a
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.array_equal(a, np.round(a)):
            raise ValueError(f"actions must be integers ({what}); got {_shown(actions)}")
        return a.astype(np.int64)
    flat = np.asarray(actions, dtype=object).reshape(-1)
    culprit = next((x for x in flat if isinstance(x, bool) or not isinstance(x, (int, np.integer))), flat[:1])
    raise TypeError(f"actions must be integers ({what}); got {culprit!r} ({type(culprit).__name__}) in "
                    f"{_shown(actions)}. Pass ints, e.g. env.action_space.sample(); a string such as '5' is not "
                    f"converted")


def _shown(actions) -> str:
    text = repr(actions.tolist() if isinstance(actions, np.ndarray) else actions)
    return text if len(text) <= 80 else text[:77] + "..."


class DialogueBatch:
    """Tensor state of N dialogue episodes. Not a Gymnasium env: ``DialogueEnv`` and ``DialogueVectorEnv`` wrap it."""

    def __init__(self, *, num_envs, tokenizer, dialogues, reward, vocab_size, max_new_tokens, max_context_tokens,
                 turns, system_prompt, user_simulator, device, outcome_reward=None):
        num_envs = int_arg("num_envs", num_envs, 1)
        max_new_tokens = int_arg("max_new_tokens", max_new_tokens, 1)
        max_context_tokens = int_arg("max_context_tokens", max_context_tokens, 8)
        turns = int_arg("turns", turns, 1)
        vocab_size = int_arg("vocab_size", vocab_size, 1)
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise ConfigTypeError(f"system_prompt={system_prompt!r} must be a string, None (no system message) or "
                                  "'auto' (the dataset's own)")
        self.lm_simulator = hasattr(user_simulator, "respond")  # dialogue_env.simulators.LMCustomer or alike
        if not (self.lm_simulator or (isinstance(user_simulator, str) and user_simulator == "replay")
                or callable(user_simulator)):
            raise ValueError(f"user_simulator={user_simulator!r}: pass 'replay', 'lm' (a language-model customer) or "
                             f"a callable(history) -> str | None")
        self.outcome_reward = outcome_reward
        self.N = int(num_envs)
        self.tok = tokenizer
        self.dialogues = dialogues
        self.reward = reward
        self.reward_seconds = 0.0  # wall time spent in reward calls (benchmarks split a rollout's time with it)
        self.V = int(vocab_size)
        self.max_new_tokens = int(max_new_tokens)
        self.max_context_tokens = int(max_context_tokens)
        self.L = self.max_context_tokens + self.max_new_tokens
        self.turns = int(turns)
        self.system_prompt = system_prompt
        self.user_simulator = user_simulator
        self.device = torch.device(device)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

        self._check_generation_prompt_fits()
        self.assistant_closing = self._assistant_closing()
        if self.lm_simulator:
            from .simulators import customer_goal

            self.goals = [customer_goal(d) for d in dialogues]

        # EOS table: a (V,) bool lookup so that "is this action an end-of-reply token" is one gather.
        eos_ids = {tokenizer.eos_token_id}
        for special in ("<|im_end|>", "<|endoftext|>", "</s>"):
            tid = tokenizer.convert_tokens_to_ids(special) if special in tokenizer.get_vocab() else None
            if tid is not None and tid != tokenizer.unk_token_id:
                eos_ids.add(tid)
        self.eos_ids = sorted(i for i in eos_ids if i is not None and 0 <= i < self.V)
        self.eos_table = torch.zeros(self.V, dtype=torch.bool, device=self.device)
        self.eos_table[self.eos_ids] = True

        # Episode plan per dialogue: which reply slots the episode covers.
        self.slots = [d.reply_slots() for d in dialogues]
        if isinstance(user_simulator, str) and user_simulator == "replay":
            self.first_slot = np.array([max(0, len(s) - self.turns) for s in self.slots], dtype=np.int64)
            self.n_replies = np.array([min(self.turns, len(s)) for s in self.slots], dtype=np.int64)
        else:  # a simulator writes the user turns after the first one
            self.first_slot = np.zeros(len(dialogues), dtype=np.int64)
            self.n_replies = np.full(len(dialogues), self.turns, dtype=np.int64)

        # Pre-tokenised start contexts of every dialogue: resetting is a gather from this table.
        self.start_histories = [list(d.turns[: self.slots[i][self.first_slot[i]][0]]) for i, d in enumerate(dialogues)]
        table, lens, truncated = self.encode_contexts(self.start_histories)
        self.start_ids = table  # (D, Lc)
        self.start_lens = lens  # (D,)
        self.start_truncated = truncated  # (D,) bool numpy

        N, L = self.N, self.L
        self.ids = torch.full((N, L), self.pad_id, dtype=torch.long, device=self.device)  # (N, L)
        self.mask = torch.zeros((N, L), dtype=torch.int8, device=self.device)  # (N, L)
        self.n_gen = torch.zeros(N, dtype=torch.long, device=self.device)  # (N,) tokens in the current reply
        self.dlg = np.zeros(N, dtype=np.int64)  # dialogue index per row
        self.reply_no = np.zeros(N, dtype=np.int64)  # 0-based reply number within the episode
        self.histories = [[] for _ in range(N)]  # chat history (no system prompt) the current reply answers
        self.turn_rewards = [[] for _ in range(N)]  # per row: the reward of each reply of the episode so far
        self.sim_generators = [torch.Generator().manual_seed(0) for _ in range(N)]  # LM simulator: one per row
        self.references = [None] * N
        self.context_truncated = np.zeros(N, dtype=bool)

    # ---------------------------------------------------------------------------------------------- contexts
    def _check_generation_prompt_fits(self) -> None:
        """Left truncation keeps the last ``max_context_tokens`` tokens; the chat template's generation prompt (the
        tokens after the last message, e.g. ``<|im_start|>assistant\\n``) must fit in them, or the model would be
        asked to continue the user's message."""
        history = [{"role": "user", "content": "hi"}]
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + history
        with_prompt = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        without = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        if not with_prompt.startswith(without):
            return  # a template we cannot split: nothing to check
        suffix = with_prompt[len(without):]
        needed = len(self.tok(suffix, add_special_tokens=False)["input_ids"])
        if self.max_context_tokens >= needed + 1:
            return
        head = self.tok.apply_chat_template(messages[:-1], tokenize=False) if self.system_prompt else ""
        keep_all = len(self.tok(head, add_special_tokens=False)["input_ids"]) + needed + 1 if head else needed + 1
        raise ConfigError(
            f"max_context_tokens={self.max_context_tokens} is too small for this tokenizer: the chat template's "
            f"generation prompt {suffix!r} alone is {needed} tokens, and the context must keep it plus at least one "
            f"token of the conversation. Use max_context_tokens >= {needed + 1}"
            + (f" (>= {keep_all} to also keep the system prompt and a token of the conversation)" if head else "")
        )

    def template(self, history, add_generation_prompt=True):
        messages = list(history)
        if self.system_prompt:
            messages = [{"role": "system", "content": self.system_prompt}] + messages
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _assistant_closing(self) -> str:
        """The text the chat template puts after an assistant message's content (``<|im_end|>\\n`` for ChatML)."""
        probe = "\u2063probe\u2063"
        text = self.tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": probe}],
                                            tokenize=False)
        at = text.rfind(probe)
        return text[at + len(probe):] if at >= 0 else ""

    def continuation_ids(self, history, ended_by=None) -> list:
        """Token ids that follow the agent's reply in the token stream of a multi-turn episode: the end of the
        assistant message and the user's next turn(s) in the chat template, up to the next generation prompt.
        ``history`` ends with those user turns after the reply; ``ended_by``: the token that ended the reply (an
        end-of-reply token whose text opens the closing is not repeated), None if it was cut at max_new_tokens."""
        k = max(i for i, m in enumerate(history) if m["role"] == "assistant")
        head = self.template(history[: k + 1], add_generation_prompt=False)
        full = self.template(history)
        if not full.startswith(head):
            raise ConfigError("this tokenizer's chat template renders a conversation differently from its prefix, so "
                              "a multi-turn episode cannot extend its token stream; use a ChatML-style template")
        text = self.assistant_closing + full[len(head):]
        if ended_by is not None:
            ended = self.tok.convert_ids_to_tokens(int(ended_by))
            if isinstance(ended, str) and ended and text.startswith(ended):
                text = text[len(ended):]
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def encode_contexts(self, histories):
        """Chat-template and tokenise histories; keep the last ``max_context_tokens`` tokens of each (left
        truncation: the oldest turns go first, the generation prompt always stays).
        Returns ``(ids (M, Lc) left-padded on device, lengths (M,) tensor, truncated (M,) numpy bool)``."""
        texts = [self.template(h) for h in histories]
        return self.encode_token_windows(self.tok(texts, add_special_tokens=False)["input_ids"])

    def _write_contexts(self, rows, ctx_ids, ctx_lens):
        """Put contexts (M, Lc) into rows of the window, right-aligned, with an empty reply."""
        rows_t = torch.as_tensor(rows, dtype=torch.long, device=self.device)
        M, Lc = ctx_ids.shape
        block = torch.full((M, self.L), self.pad_id, dtype=torch.long, device=self.device)
        block[:, self.L - Lc:] = ctx_ids
        positions = torch.arange(self.L, device=self.device).unsqueeze(0)  # (1, L)
        mask = (positions >= (self.L - ctx_lens).unsqueeze(1)).to(torch.int8)  # (M, L)
        self.ids[rows_t] = block
        self.mask[rows_t] = mask
        self.n_gen[rows_t] = 0

    # ------------------------------------------------------------------------------------------------- reset
    def reset_rows(self, rows, dialogue_indices, simulator_seeds=None):
        """Start new episodes in ``rows`` on the given dialogues (gather from the pre-tokenised table);
        ``simulator_seeds`` (one per row) seed an LM user simulator's generator of each row."""
        rows = np.asarray(rows, dtype=np.int64)
        idx = np.asarray(dialogue_indices, dtype=np.int64)
        if rows.size == 0:
            return
        if (idx < 0).any() or (idx >= len(self.dialogues)).any():
            raise ValueError(f"dialogue index out of range 0..{len(self.dialogues) - 1}: {idx.tolist()}")
        idx_t = torch.as_tensor(idx, device=self.device)
        self._write_contexts(rows, self.start_ids[idx_t], self.start_lens[idx_t])
        self.dlg[rows] = idx
        self.reply_no[rows] = 0
        self.context_truncated[rows] = self.start_truncated[idx]
        for r, d in zip(rows.tolist(), idx.tolist()):
            self.histories[r] = list(self.start_histories[d])
            self.turn_rewards[r] = []
            self.references[r] = self.slots[d][self.first_slot[d]][1]
        if self.lm_simulator:
            for j, r in enumerate(rows.tolist()):
                seed = 0 if simulator_seeds is None else int(simulator_seeds[j])
                self.sim_generators[r] = torch.Generator().manual_seed(seed)

    # -------------------------------------------------------------------------------------------------- step
    def check_actions(self, actions) -> torch.Tensor:
        if not torch.is_tensor(actions):
            actions = integer_array(actions, f"token ids in [0, {self.V - 1}] (the action space is Discrete({self.V}))")
        a = torch.as_tensor(actions, device=self.device)
        if a.dtype.is_floating_point or a.dtype == torch.bool:
            if a.dtype.is_floating_point and not torch.equal(a, a.round()):
                raise ValueError(f"actions must be integer token ids, got {a.tolist()}")
            a = a.long()
        a = a.reshape(-1).long()
        if a.numel() != self.N:
            raise ValueError(f"expected {self.N} actions (one token id per env), got {a.numel()}")
        bad = (a < 0) | (a >= self.V)
        if bool(bad.any()):
            where = torch.nonzero(bad).flatten().tolist()
            raise ValueError(
                f"action out of range for env(s) {where}: {a[bad].tolist()}; actions are token ids in "
                f"[0, {self.V - 1}] (the action space is Discrete({self.V}))"
            )
        return a

    def append(self, a: torch.Tensor, active: torch.Tensor):
        """Append token ``a[i]`` to every row where ``active[i]``; return ``(ended_eos, ended_len)`` masks."""
        a = torch.where(active, a, torch.full_like(a, self.pad_id))
        shifted_ids = torch.cat([self.ids[:, 1:], a.unsqueeze(1)], dim=1)  # (N, L)
        shifted_mask = torch.cat([self.mask[:, 1:], torch.ones_like(self.mask[:, :1])], dim=1)  # (N, L)
        act = active.unsqueeze(1)
        self.ids = torch.where(act, shifted_ids, self.ids)
        self.mask = torch.where(act, shifted_mask, self.mask)
        self.n_gen = self.n_gen + active.long()
        ended_eos = active & self.eos_table[a]
        ended_len = active & ~ended_eos & (self.n_gen >= self.max_new_tokens)
        return ended_eos, ended_len

    def finish_replies(self, ended_eos: torch.Tensor, ended_len: torch.Tensor) -> ReplyEnd | None:
        """Decode, score and advance every row whose reply ended. One tokenizer and one reward call in all."""
        ended = ended_eos | ended_len
        if not bool(ended.any()):
            return None
        rows = torch.nonzero(ended).flatten().cpu().numpy()
        by_eos = ended_eos.cpu().numpy()[rows]
        n_gen = self.n_gen.cpu().numpy()[rows]
        ids = self.ids[torch.as_tensor(rows, device=self.device)].cpu()
        # The reply is the last n_gen tokens; an EOS token ending it is not part of the text.
        reply_tokens = [ids[j, self.L - n:].tolist() for j, n in enumerate(n_gen)]
        reply_tokens = [t[:-1] if by_eos[j] else t for j, t in enumerate(reply_tokens)]
        responses = [s.strip() for s in self.tok.batch_decode(reply_tokens, skip_special_tokens=True)]
        last_ids = ids[:, -1].tolist()
        return self.conclude_replies(rows, responses, by_eos, ended_by=[t if e else None for t, e in
                                                                        zip(last_ids, by_eos)])

    def conclude_replies(self, rows, responses, by_eos, ended_by=None) -> ReplyEnd:
        """Score finished replies (one reward call), get the user's next turns (one batched call to an LM
        simulator), score the outcome of the episodes that ended (one outcome-reward call) and start the next turn of
        the others. ``ended_by``: per reply the token that ended it (or None); given, the token window of each row
        that goes on becomes its stream so far plus :meth:`continuation_ids` (the token env); None leaves the token
        windows alone (the utterance env)."""
        rows = np.asarray(rows, dtype=np.int64)
        by_eos = np.asarray(by_eos, dtype=bool)
        M = len(rows)
        contexts = [list(self.histories[r]) for r in rows]
        references = [self.references[r] for r in rows]
        started = time.perf_counter()
        result = self.reward.score(contexts, responses, references=references)
        self.reward_seconds += time.perf_counter() - started
        turn_total = np.asarray(result.total, dtype=np.float64)
        components = {k: np.asarray(v, dtype=np.float64) for k, v in result.components.items()}
        details = list(result.details) if getattr(result, "details", None) is not None else [{} for _ in rows]

        for j, r in enumerate(rows):
            self.turn_rewards[r].append(float(turn_total[j]))
        self.reply_no[rows] += 1
        last_turn = self.reply_no[rows] >= self.n_replies[self.dlg[rows]]
        episode_over = last_turn.copy()
        answered = [contexts[j] + [{"role": "assistant", "content": responses[j]}] for j in range(M)]
        outcomes: list = [None] * M
        upcoming: list = [None] * M  # (user turns, reference) of rows whose episode goes on
        if self.lm_simulator:  # the customer answers every reply, the last one included (its verdict)
            answers = self.user_simulator.respond(answered, [self.goals[self.dlg[r]] for r in rows],
                                                  last_turn.tolist(), [self.sim_generators[r] for r in rows])
            for j, answer in enumerate(answers):
                outcomes[j] = answer.outcome
                if answer.outcome is not None:
                    episode_over[j] = True
                elif not last_turn[j]:
                    upcoming[j] = ([{"role": "user", "content": answer.message}], None)
        else:
            for j in np.nonzero(~episode_over)[0]:
                user_turns, reference = self._next_user_turns(rows[j], answered[j])
                if user_turns is None:  # the simulator ended the conversation
                    episode_over[j] = True
                else:
                    upcoming[j] = (user_turns, reference)
        next_ids: list = [None] * M
        keep = [j for j in range(M) if not episode_over[j]]
        for j in keep:
            r = rows[j]
            self.histories[r] = answered[j] + upcoming[j][0]
            self.references[r] = upcoming[j][1]
        if ended_by is not None and keep:
            windows = []
            for j in keep:
                r = int(rows[j])
                next_ids[j] = self.continuation_ids(self.histories[r], ended_by[j])
                windows.append(self.ids[r][self.mask[r].bool()].tolist() + next_ids[j])
            ctx, lens, trunc = self.encode_token_windows(windows)
            self._write_contexts(rows[keep], ctx, lens)
            self.context_truncated[rows[keep]] = trunc

        outcome_total = np.zeros(M, dtype=np.float64)
        outcome_components: dict = {}
        over = np.nonzero(episode_over)[0]
        if self.outcome_reward is not None and over.size:
            res = self.outcome_reward.score([contexts[j] for j in over], [responses[j] for j in over],
                                            outcomes=[outcomes[j] for j in over])
            outcome_total[over] = np.asarray(res.total, dtype=np.float64)
            for k, v in res.components.items():
                outcome_components[k] = np.zeros(M, dtype=np.float64)
                outcome_components[k][over] = np.asarray(v, dtype=np.float64)
        terminated = episode_over & by_eos
        truncated = episode_over & ~by_eos
        return ReplyEnd(rows=rows, responses=responses, contexts=contexts, references=references,
                        total=turn_total + outcome_total, components=components, details=details,
                        episode_over=episode_over, terminated=terminated, truncated=truncated, turn_total=turn_total,
                        outcomes=outcomes, outcome_total=outcome_total, outcome_components=outcome_components,
                        next_ids=next_ids)

    def encode_token_windows(self, windows):
        """Token lists -> ``(ids (M, Lc) left-padded on device, lengths (M,), truncated (M,) numpy bool)``, each
        keeping its last ``max_context_tokens`` tokens."""
        Lc = self.max_context_tokens
        out = torch.full((len(windows), Lc), self.pad_id, dtype=torch.long)
        lens = torch.zeros(len(windows), dtype=torch.long)
        truncated = np.zeros(len(windows), dtype=bool)
        for j, seq in enumerate(windows):
            if len(seq) > Lc:
                seq = seq[-Lc:]
                truncated[j] = True
            if seq:
                out[j, Lc - len(seq):] = torch.tensor(seq, dtype=torch.long)
            lens[j] = len(seq)
        return out.to(self.device), lens.to(self.device), truncated

    def _next_user_turns(self, row, history):
        """The user's next message(s) after the agent's reply, and the reference for the next slot."""
        d = self.dlg[row]
        slot = self.first_slot[d] + self.reply_no[row]  # the slot to reply to next
        if isinstance(self.user_simulator, str):  # "replay"
            prev_end = self.slots[d][slot - 1][0]
            end, reference = self.slots[d][slot]
            # Dataset messages after the previous slot's reference reply, up to the next user turn.
            turns = self.dialogues[d].turns
            start = prev_end + 1 if prev_end < len(turns) and turns[prev_end]["role"] == "assistant" else prev_end
            return [dict(m) for m in turns[start:end]], reference
        text = self.user_simulator([dict(m) for m in history])
        if text is None:
            return None, None
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"user_simulator returned {text!r}; it must return a non-empty string or None")
        return [{"role": "user", "content": text}], None

    # ----------------------------------------------------------------------------------------------- helpers
    def observation(self, as_tensors=False):
        if as_tensors:
            return {"input_ids": self.ids, "attention_mask": self.mask}
        return {"input_ids": self.ids.cpu().numpy().copy(), "attention_mask": self.mask.cpu().numpy().copy()}

    def partial_reply(self, row) -> str:
        n = int(self.n_gen[row])
        if n == 0:
            return ""
        return self.tok.decode(self.ids[row, self.L - n:].tolist(), skip_special_tokens=True)

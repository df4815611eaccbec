"""``dialogue_env/Dialogue-v0``: dialogue generation as a token-level Gymnasium environment, and its batched twin."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv

from rewards.utils import ConfigError

from .core import CUSTOMER_SERVICE_SYSTEM_PROMPT, DialogueBatch
from .data import Dialogue, dataset_info, load_dataset
from .models import check_device, load_tokenizer, vocab_size_of


@functools.lru_cache(maxsize=8)
def _cached_tokenizer(model: str):
    return load_tokenizer(model)


@functools.lru_cache(maxsize=8)
def _cached_vocab_size(model: str) -> int:
    return vocab_size_of(model, _cached_tokenizer(model))


def _build_batch(num_envs, *, model, dataset, split, reward, max_new_tokens, max_context_tokens, turns,
                 system_prompt, user_simulator, device, tokenizer=None, outcome_reward="auto",
                 simulator_model="smollm2-135m") -> DialogueBatch:
    check_device(device)
    if tokenizer is None:
        if not isinstance(model, str):
            raise TypeError(f"model={model!r} must be a model name or path (str); to use your own tokenizer pass "
                            f"tokenizer=... as well")
        tokenizer = _cached_tokenizer(model)
        vocab_size = _cached_vocab_size(model)
    else:
        model_vocab = vocab_size_of(model, tokenizer) if isinstance(model, str) else 0
        if model_vocab and len(tokenizer) > model_vocab:
            raise ConfigError(f"the tokenizer has {len(tokenizer)} tokens but model {model!r} has an output layer of "
                              f"{model_vocab}: its ids would not all be actions of that model. Pass the tokenizer "
                              f"the model was trained with (or leave tokenizer=None to load the model's own)")
        vocab_size = max(len(tokenizer), model_vocab)
    if isinstance(dataset, (list, tuple)) and dataset and isinstance(dataset[0], Dialogue):
        dialogues = list(dataset)
    else:
        dialogues = load_dataset(dataset, split)
    info = dataset_info(dataset)
    if system_prompt == "auto":
        system_prompt = CUSTOMER_SERVICE_SYSTEM_PROMPT if dataset == "customer_service" else info.system_prompt
    import rewards

    # the dataset's language picks the scorers, its ethics profile the guideline (explicit options win)
    composite = rewards.make_composite(rewards.DEFAULT_SPEC if reward is None else reward, device=device,
                                       **info.reward_options())
    if isinstance(user_simulator, str) and user_simulator == "lm":
        user_simulator = _cached_customer(simulator_model, str(device))
    elif isinstance(user_simulator, str) and user_simulator != "replay":
        raise ValueError(f"user_simulator={user_simulator!r}: pass 'replay', 'lm' (a language-model customer) or a "
                         f"callable(history) -> str | None")
    if isinstance(outcome_reward, str) and outcome_reward == "auto":
        outcome_reward = "resolution" if hasattr(user_simulator, "respond") else None
    outcome = None if outcome_reward is None else rewards.make_composite(outcome_reward, device=device)
    return DialogueBatch(num_envs=num_envs, tokenizer=tokenizer, dialogues=dialogues, reward=composite,
                         vocab_size=vocab_size, max_new_tokens=max_new_tokens, max_context_tokens=max_context_tokens,
                         turns=turns, system_prompt=system_prompt, user_simulator=user_simulator, device=device,
                         outcome_reward=outcome)


@functools.lru_cache(maxsize=4)
def _cached_customer(model: str, device: str):
    """One LM customer per (model, device): envs made with user_simulator="lm" share its weights (each keeps its own
    per-row generators, seeded at reset)."""
    from .simulators import LMCustomer

    return LMCustomer(model, device=device)


def simulator_seeds(batch: DialogueBatch, rngs) -> list | None:
    """One seed per starting episode for an LM user simulator, drawn from each sub-env's generator (None without
    one, so that the replay and callable simulators draw nothing extra)."""
    if not batch.lm_simulator:
        return None
    return [int(rng.integers(2**62)) for rng in rngs]


def _spaces(batch: DialogueBatch):
    obs = spaces.Dict({
        "input_ids": spaces.Box(0, batch.V - 1, (batch.L,), dtype=np.int64),
        "attention_mask": spaces.Box(0, 1, (batch.L,), dtype=np.int8),
    })
    return obs, spaces.Discrete(batch.V)


def _reset_info(batch: DialogueBatch, row: int) -> dict:
    d = batch.dialogues[batch.dlg[row]]
    return {"context": [dict(m) for m in batch.histories[row]], "reference": batch.references[row],
            "dialogue_id": d.id, "intent": d.intent, "turn": 0, "context_truncated": bool(batch.context_truncated[row])}


def _reply_info(batch: DialogueBatch, end, j: int) -> dict:
    row = int(end.rows[j])
    return {
        "response": end.responses[j],
        "reward_components": {k: float(v[j]) for k, v in end.components.items()},
        "reward_details": dict(end.details[j]) if end.details[j] else {},
        "context": end.contexts[j],
        "reference": end.references[j],
        "dialogue_id": batch.dialogues[batch.dlg[row]].id,
        "turn": int(batch.reply_no[row]),
        **turn_info(batch, end, j),
    }


def turn_info(batch: DialogueBatch, end, j: int) -> dict:
    """The multi-turn part of a reply-end info: ``turn_reward`` (this reply's own reward), ``turn_rewards`` (every
    reply's so far), and, on the episode's last reply, ``outcome`` ("resolved" / "gave_up" from an LM customer, else
    None), ``outcome_reward`` and ``outcome_components`` (the step's reward is the turn reward plus the outcome
    reward, so ``sum(turn_rewards) + outcome_reward`` is the episode's return). While the episode goes on:
    ``next_context`` (the history the next reply answers, the user's new turn included), ``next_reference``, and in
    the token env ``user_token_ids``: the tokens it appended after the reply (the end of the turn and the user's next
    message in the chat template)."""
    row = int(end.rows[j])
    info = {"turn_reward": float(end.turn_total[j]), "turn_rewards": list(batch.turn_rewards[row])}
    if end.episode_over[j]:
        info.update(outcome=end.outcomes[j], outcome_reward=float(end.outcome_total[j]),
                    outcome_components={k: float(v[j]) for k, v in end.outcome_components.items()})
    else:
        info.update(next_context=[dict(m) for m in batch.histories[row]], next_reference=batch.references[row])
        if end.next_ids is not None and end.next_ids[j] is not None:
            info["user_token_ids"] = [int(t) for t in end.next_ids[j]]
    return info


class DialogueSurface:
    """The public, read-only members that agents may use beside the Gymnasium API (on ``env.unwrapped``). Nothing
    else of an env's state is public: agents never touch its token buffers or its reference model."""

    batch: DialogueBatch

    @property
    def dialogues(self) -> list:
        """The dialogues of the env's dataset split (``options={"dialogue_index": i}`` picks ``dialogues[i]``)."""
        return self.batch.dialogues

    @property
    def context_lengths(self) -> np.ndarray:
        """(D,) token length of each dialogue's starting context (after chat templating and truncation)."""
        return self.batch.start_lens.cpu().numpy()

    @property
    def eos_token_ids(self) -> tuple:
        """The token ids that end a reply (``<|im_end|>``, the tokenizer's EOS, ...)."""
        return tuple(self.batch.eos_ids)

    @property
    def pad_token_id(self) -> int:
        """The token id the observation's left padding uses (mask 0)."""
        return int(self.batch.pad_id)

    @property
    def vocab_size(self) -> int:
        """V: Dialogue-v0's action space is ``Discrete(V)``."""
        return self.batch.V

    @property
    def max_new_tokens(self) -> int:
        """The longest reply; a reply that reaches it is cut (truncated on the last turn)."""
        return self.batch.max_new_tokens

    @property
    def turns(self) -> int:
        """Agent replies per episode."""
        return self.batch.turns

    @property
    def reward_seconds(self) -> float:
        """Wall time spent in the reward module since the env was made (a counter: benchmarks take differences)."""
        return self.batch.reward_seconds

    @property
    def device(self) -> torch.device:
        """Where the env's tensors live (``return_tensors=True`` observations are on it)."""
        return self.batch.device

    def context_tokens(self, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The token window of sub-envs ``rows`` (default: all) as ``(ids, mask)`` (M, S) tensors on ``device``,
        left-padded and trimmed to the longest row: right after a reset (or a new user turn) that is the
        chat-templated context the next reply answers. Observation wrappers that drop the token ids (e.g.
        ``TopKFeatures``) leave this available."""
        rows = slice(None) if rows is None else torch.as_tensor(np.asarray(rows, dtype=np.int64))
        ids, mask = self.batch.ids[rows], self.batch.mask[rows]
        n = max(int(mask.sum(1).max()), 1) if len(mask) else 1
        return ids[:, -n:].clone(), mask[:, -n:].long().clone()


class DialogueEnv(DialogueSurface, gym.Env):
    """Dialogue generation as a token-level MDP: the agent writes the support agent's reply one token at a time.

    ## Description
    Each episode takes a dialogue from a dataset (by default the shipped Brightline customer-service set), shows
    the conversation so far as chat-templated tokens, and lets the agent write the reply token by token. When the
    reply ends, a pluggable reward module scores it (by default the coherence + sentiment + consistency reward,
    gated by ethics). With ``turns > 1`` a user simulator adds the customer's next message and the episode goes on.
    The env holds no language model and no KL term: it is policy-agnostic, so every agent is scored on the same
    reward; KL shaping against a reference model is the agent's job.

    ## Action space
    ``Discrete(V)``: the next token id, where ``V`` is the model's vocabulary size (49152 for SmolLM2, 259 for
    ``tiny-random``). An id outside ``[0, V)`` raises ``ValueError``.

    ## Observation space
    ``Dict(input_ids=Box(0, V-1, (L,), int64), attention_mask=Box(0, 1, (L,), int8))`` with
    ``L = max_context_tokens + max_new_tokens``: the chat-templated context (system prompt, the conversation, the
    assistant generation prompt) followed by the reply tokens so far, left-padded with the pad token (mask 0).
    A context longer than ``max_context_tokens`` is truncated from the left (the oldest tokens go, the generation
    prompt stays) and ``info["context_truncated"]`` is ``True``.

    ## Rewards
    0 on every token except the last token of a reply, which gets the reward module's total for the decoded reply.
    ``info["reward_components"]`` holds each component's unweighted value on that step, ``info["reward_details"]``
    any per-reply notes (for example why the ethics gate fired).

    ## Episode end
    - ``terminated``: the agent emitted an end-of-reply token (``<|im_end|>`` or the tokenizer's EOS) on the last turn.
    - ``truncated``: the last turn's reply reached ``max_new_tokens`` tokens without one.
    On earlier turns of a multi-turn episode either event ends the reply and the episode continues.

    ## Starting state
    ``reset`` draws a dialogue uniformly with the env's seeded generator (``options={"dialogue_index": i}`` or
    ``{"dialogue_id": "..."}`` picks one). With ``turns=T`` and the replay simulator the episode covers the
    dialogue's last ``min(T, n)`` reply slots; the context holds the dataset's turns before the first of them.

    ## Info
    Reset: ``context`` (the chat history without the system prompt), ``reference`` (the dataset's reply, or None),
    ``dialogue_id``, ``intent``, ``turn`` = 0, ``context_truncated``. A step that ends a reply adds ``response``
    (decoded text), ``reward_components``, ``reward_details``, ``context`` (the history it answered),
    ``reference`` and ``turn`` (replies written so far), plus the per-turn fields of :func:`turn_info`
    (``turn_reward``, ``turn_rewards``; on the last reply ``outcome``, ``outcome_reward``, ``outcome_components``;
    otherwise ``next_context``, ``next_reference``, ``user_token_ids``). Other steps return ``{}``.

    ## Multi-turn
    With ``turns > 1`` the context of the next reply is the token stream so far (the agent's tokens exactly as it
    wrote them) plus the user simulator's turn in the chat template, up to the next generation prompt
    (``info["user_token_ids"]``), left-truncated to ``max_context_tokens``. The step reward on a reply's last token
    is its turn reward, plus the outcome reward on the episode's last reply.

    ## Arguments
    - ``model`` (str, "smollm2-135m"): model name whose tokenizer and vocabulary define the spaces: "smollm2-135m",
      "tiny-random", a hub id or a local directory. No weights are loaded.
    - ``dataset`` ("customer_service"): "customer_service", "customer_service_zh", "medical", "education", "legal",
      "chatterbot", "chatterbot-chinese", a JSONL path, or a list of ``Dialogue``. ``split`` ("train"): train /
      validation / test.
    - ``reward`` (None): a reward name, a ``{name: weight}`` dict, or a reward module; None = ``rewards.DEFAULT_SPEC``.
      Built from names, its parts follow the dataset's ``dataset.json``: ``language="zh"`` picks the Chinese
      scorers and ``ethics_profile`` the ethics guideline (``dialogue_env.data.dataset_info``), unless the spec
      sets them (``{"ethics": {"profile": "legal"}}``).
    - ``max_new_tokens`` (48), ``max_context_tokens`` (512), ``turns`` (1).
    - ``system_prompt`` ("auto"): a string, None for none, or "auto" (the dataset's own prompt: customer_service's
      and those in ``dataset.json``).
    - ``user_simulator`` ("replay"): replay the dataset's user turns, a callable ``(history) -> str | None``, or
      "lm": a local LM plays the customer and ends each conversation resolved or gave up
      (``dialogue_env.simulators.LMCustomer``, model ``simulator_model``, "smollm2-135m").
    - ``outcome_reward`` ("auto"): a reward spec scored once per episode on its last reply with the simulator's
      ``outcomes=`` ("auto": ``"resolution"`` with the LM customer, else none; None for none).
    - ``device`` ("cpu"): where the token state and reward models live. ``render_mode``: None or "ansi".

    ## Public members (on ``env.unwrapped``, read-only)
    ``dialogues``, ``context_lengths``, ``eos_token_ids``, ``pad_token_id``, ``vocab_size``, ``max_new_tokens``,
    ``turns``, ``device``, ``tokenizer``, ``reward_module`` and ``context_tokens()`` (see ``DialogueSurface``).
    Everything else is internal state.

    ## Version history
    - v0: first release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, model="smollm2-135m", dataset="customer_service", split="train", reward=None,
                 max_new_tokens=48, max_context_tokens=512, turns=1, system_prompt="auto", user_simulator="replay",
                 device="cpu", render_mode=None, tokenizer=None, outcome_reward="auto",
                 simulator_model="smollm2-135m"):
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; use None or 'ansi'")
        self.render_mode = render_mode
        self.batch = _build_batch(1, model=model, dataset=dataset, split=split, reward=reward,
                                  max_new_tokens=max_new_tokens, max_context_tokens=max_context_tokens, turns=turns,
                                  system_prompt=system_prompt, user_simulator=user_simulator, device=device,
                                  tokenizer=tokenizer, outcome_reward=outcome_reward,
                                  simulator_model=simulator_model)
        self.observation_space, self.action_space = self._make_spaces()
        self.tokenizer = self.batch.tok
        self.reward_module = self.batch.reward
        self._needs_reset = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = check_options(options, SINGLE_OPTIONS)
        super().reset(seed=seed)
        index = _pick_dialogue(self.batch, self.np_random, options)
        self.batch.reset_rows([0], [index], simulator_seeds(self.batch, [self.np_random]))
        self._needs_reset = False
        return self._obs(), _reset_info(self.batch, 0)

    def _make_spaces(self):
        return _spaces(self.batch)

    def _obs(self):
        obs = self.batch.observation()
        return {"input_ids": obs["input_ids"][0], "attention_mask": obs["attention_mask"][0]}

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("the episode is over (or never started): call env.reset() before env.step()")
        a = self.batch.check_actions([action])
        ended_eos, ended_len = self.batch.append(a, torch.ones(1, dtype=torch.bool, device=self.batch.device))
        end = self.batch.finish_replies(ended_eos, ended_len)
        reward, terminated, truncated, info = 0.0, False, False, {}
        if end is not None:
            reward = float(end.total[0])
            terminated, truncated = bool(end.terminated[0]), bool(end.truncated[0])
            info = _reply_info(self.batch, end, 0)
            self._needs_reset = terminated or truncated
        return self._obs(), reward, terminated, truncated, info

    def render(self):
        if self.render_mode != "ansi":
            return None
        return _render_row(self.batch, 0)


def _render_row(batch: DialogueBatch, row: int) -> str:
    lines = [f"[{m['role']}] {m['content']}" for m in batch.histories[row]]
    lines.append(f"[assistant] {batch.partial_reply(row)}")
    return "\n".join(lines) + "\n"


SINGLE_OPTIONS = ("dialogue_index", "dialogue_id")
VECTOR_OPTIONS = ("reset_mask", "dialogue_indices") + SINGLE_OPTIONS


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_options(options, allowed: tuple) -> dict:
    """A copy of ``reset(options=...)`` after checking its keys and the types of its values (``allowed``: the keys
    this env understands); errors name the option and what it takes."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"reset(options=...) must be a dict such as {{'dialogue_index': 0}}, got "
                        f"{type(options).__name__} {options!r}")
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown!r}; this env understands {', '.join(allowed)}")
    picks = [k for k in ("dialogue_indices", "dialogue_index", "dialogue_id") if k in options]
    if len(picks) > 1:
        raise ValueError(f"reset options {picks} each pick the dialogue: give only one of them")
    if "dialogue_index" in options and not _is_int(options["dialogue_index"]):
        value = options["dialogue_index"]
        raise TypeError(f"options['dialogue_index']={value!r} must be an int (an index into env.dialogues), got "
                        f"{type(value).__name__}; to pick by id use options={{'dialogue_id': ...}}")
    if "dialogue_id" in options and not isinstance(options["dialogue_id"], str):
        value = options["dialogue_id"]
        raise TypeError(f"options['dialogue_id']={value!r} must be a str (a dialogue's 'id'), got "
                        f"{type(value).__name__}; to pick by position use options={{'dialogue_index': ...}}")
    return dict(options)


def _pick_dialogue(batch: DialogueBatch, rng: np.random.Generator, options) -> int:
    options = options or {}
    if "dialogue_index" in options:
        index = int(options["dialogue_index"])
        if not 0 <= index < len(batch.dialogues):
            raise ValueError(f"options['dialogue_index']={index} is out of range 0..{len(batch.dialogues) - 1}")
        return index
    if "dialogue_id" in options:
        ids = [d.id for d in batch.dialogues]
        if options["dialogue_id"] not in ids:
            raise ValueError(f"options['dialogue_id']={options['dialogue_id']!r} is not in this dataset split")
        return ids.index(options["dialogue_id"])
    return int(rng.integers(len(batch.dialogues)))


class DialogueVectorEnv(DialogueSurface, VectorEnv):
    """``num_envs`` copies of ``Dialogue-v0`` stepped together as tensors on one device.

    Made by ``gym.make_vec("dialogue_env/Dialogue-v0", num_envs=N, vectorization_mode="vector_entry_point", ...)``
    with the same keyword arguments as ``DialogueEnv`` plus ``return_tensors``: with ``False`` (default) the
    observations are numpy arrays ``(N, L)``; with ``True`` they are the env's own torch tensors on ``device`` (read
    them, do not write them), which lets a GPU agent step without host copies.

    Every sub-env's state lives in ``(N, L)`` tensors; a step appends all N tokens with tensor operations and runs
    one tokenizer call and one batched reward call for the sub-envs whose replies ended.

    Seeding: ``reset(seed=s)`` seeds sub-env ``i`` with ``s + i`` (a list seeds each), exactly like
    ``SyncVectorEnv``; with the same seeds and actions every sub-env's trajectory equals that of a single
    ``Dialogue-v0``.

    Autoreset (Gymnasium 1.x ``NEXT_STEP`` mode): when sub-env ``i`` terminates or truncates, the step returns its
    final observation. On the next ``step`` its action is ignored, it starts a new episode, and that step returns
    the new first observation with reward 0, ``terminated = truncated = False`` and the reset info.
    ``reset(options={"reset_mask": mask})`` resets only the masked sub-envs, and
    ``options={"dialogue_indices": idx}`` (one index per sub-env) picks their dialogues.

    Public members: those of ``DialogueSurface`` (``dialogues``, ``context_lengths``, ``eos_token_ids``,
    ``pad_token_id``, ``vocab_size``, ``max_new_tokens``, ``turns``, ``device``, ``context_tokens()``), plus
    ``tokenizer`` and ``reward_module``.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, num_envs: int = 1, model="smollm2-135m", dataset="customer_service", split="train",
                 reward=None, max_new_tokens=48, max_context_tokens=512, turns=1, system_prompt="auto",
                 user_simulator="replay", device="cpu", render_mode=None, tokenizer=None, return_tensors=False,
                 outcome_reward="auto", simulator_model="smollm2-135m"):
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} must be at least 1")
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.return_tensors = bool(return_tensors)
        self.batch = _build_batch(self.num_envs, model=model, dataset=dataset, split=split, reward=reward,
                                  max_new_tokens=max_new_tokens, max_context_tokens=max_context_tokens, turns=turns,
                                  system_prompt=system_prompt, user_simulator=user_simulator, device=device,
                                  tokenizer=tokenizer, outcome_reward=outcome_reward,
                                  simulator_model=simulator_model)
        self.single_observation_space, self.single_action_space = self._make_spaces()
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.tokenizer = self.batch.tok
        self.reward_module = self.batch.reward
        self._rngs = [seeding.np_random(None)[0] for _ in range(self.num_envs)]
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._started = False

    def reset(self, *, seed=None, options=None):
        options = check_options(options, VECTOR_OPTIONS)
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, dtype=bool)))
        if mask.dtype != bool and not (mask.dtype.kind in "iu" and np.isin(mask, (0, 1)).all()):
            raise TypeError(f"options['reset_mask'] must be {self.num_envs} booleans (True = reset that sub-env), got "
                            f"{mask.tolist()!r}; to pick dialogues use options['dialogue_indices']")
        mask = mask.astype(bool)
        if mask.shape != (self.num_envs,):
            raise ValueError(f"options['reset_mask'] must have shape ({self.num_envs},), got {mask.shape}")
        indices = options.pop("dialogue_indices", None)
        rows = np.nonzero(mask)[0]
        if indices is not None:
            chosen = np.asarray(indices)
            if chosen.dtype.kind not in "iu":
                raise TypeError(f"options['dialogue_indices'] must be {self.num_envs} ints (indices into "
                                f"env.dialogues, one per sub-env), got {indices!r}")
            chosen = chosen.astype(np.int64).reshape(-1)
            if chosen.shape != (self.num_envs,):
                raise ValueError(f"options['dialogue_indices'] needs {self.num_envs} entries, got {chosen.size}")
            chosen = chosen[rows]
        else:
            chosen = [_pick_dialogue(self.batch, self._rngs[r], options) for r in rows]
        self.batch.reset_rows(rows, chosen, simulator_seeds(self.batch, [self._rngs[r] for r in rows]))
        self._autoreset[rows] = False
        self._started = True
        infos = {}
        for r in rows:
            infos = self._add_info(infos, _reset_info(self.batch, int(r)), int(r))
        return self._observation(), infos

    def _make_spaces(self):
        return _spaces(self.batch)

    def _observation(self):
        return self.batch.observation(self.return_tensors)

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = self.batch.check_actions(actions)
        infos = {}
        resetting = np.nonzero(self._autoreset)[0]
        if resetting.size:
            chosen = [_pick_dialogue(self.batch, self._rngs[r], None) for r in resetting]
            self.batch.reset_rows(resetting, chosen, simulator_seeds(self.batch, [self._rngs[r] for r in resetting]))
            for r in resetting:
                infos = self._add_info(infos, _reset_info(self.batch, int(r)), int(r))
        active = torch.as_tensor(~self._autoreset, device=self.batch.device)
        ended_eos, ended_len = self.batch.append(a, active)
        end = self.batch.finish_replies(ended_eos, ended_len)
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        if end is not None:
            rewards[end.rows] = end.total
            terminated[end.rows] = end.terminated
            truncated[end.rows] = end.truncated
            for j, r in enumerate(end.rows):
                infos = self._add_info(infos, _reply_info(self.batch, end, j), int(r))
        self._autoreset = terminated | truncated
        return self._observation(), rewards, terminated, truncated, infos

    def render(self):
        if self.render_mode != "ansi":
            return None
        return "".join(f"--- env {i} ---\n" + _render_row(self.batch, i) for i in range(self.num_envs))

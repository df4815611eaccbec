"""``learned``: a Bradley–Terry reward model trained on preference pairs, and the reward module that serves it.

The model scores a reply ``y`` to a conversation ``x``::

    c = e(last k turns of x)     r = e(y)          e(.) = unit-norm mean-pooled sentence embedding (MiniLM)
    f = [r, c, r * c, |r - c|]                     (4D features; D = 384 for all-MiniLM-L6-v2)
    s(x, y) = MLP(f)                               a scalar; higher = better

and is trained on pairs ``(x, y_chosen, y_rejected)`` with the Bradley–Terry likelihood
(Bradley & Terry 1952; Christiano et al. 2017; Ouyang et al. 2022)::

    P(y_chosen > y_rejected | x) = sigmoid(s(x, y_chosen) - s(x, y_rejected))
    loss = -mean log sigmoid(s(x, y_chosen) - s(x, y_rejected))

Held-out *pairwise accuracy* is the fraction of test pairs with ``s(chosen) > s(rejected)`` (a tie counts as
wrong). By default the sentence encoder is frozen (its embeddings are computed once, so training takes seconds
after the embedding pass); ``num_layers_unfrozen=k`` also fine-tunes the encoder's top ``k`` transformer layers
(the frozen lower layers' token states are computed once and reused every epoch).

A trained model is a directory::

    reward_model.json     the config: backbone, head sizes, score normalisation, training data hash, metrics
    model.safetensors     the head's weights (and the fine-tuned top layers, if any); the backbone itself is
                          loaded from its own source (the bundled all-MiniLM-L6-v2 for "minilm")

written atomically. ``kind: lm`` in the config is the other kind of model, a causal LM with a scalar head on the last
token (:mod:`rewards.learned_lm`), saved and served the same way. Train one with ``dialogue-rl reward-model train --out DIR`` (see :mod:`agents.reward_model`) or
:func:`rewards.learned_train.train_reward_model` + :func:`save_reward_model`; use it as a reward with
``rewards.make("learned", path=DIR)`` or ``reward={"learned": {"weight": 1.0, "path": DIR}, "ethics": 1.0}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .base import Context, RewardModelError, message_text
from .learned_lm import SavedWeights, make_head
from .utils import ConfigBase, atomic_directory

__all__ = [
    "CONFIG_FILE",
    "ENV_PATH",
    "FORMAT",
    "WEIGHTS_FILE",
    "LearnedReward",
    "RewardModel",
    "RewardModelConfig",
    "RewardModelError",
    "TextEncoder",
    "check_out_dir",
    "clear_cache",
    "data_hash",
    "format_context",
    "load_reward_model",
    "save_reward_model",
]

FORMAT = "dialogue-rl-reward-model"
VERSION = 2  # 1: sentence-encoder models (no `kind`); 2: adds kind "lm"
CONFIG_FILE = "reward_model.json"
WEIGHTS_FILE = "model.safetensors"
ENV_PATH = "DIALOGUE_RL_REWARD_MODEL"  # default path of the `learned` reward when none is given
TRAIN_HINT = "train one with `dialogue-rl reward-model train --data customer_service --out DIR`"


# ------------------------------------------------------------------------------------------------ inputs
def format_context(context: Context | str, turns: int = 3) -> str:
    """The text the model reads for a conversation: its last ``turns`` non-system messages, one per line as
    ``role: content`` (system prompts are skipped, so the env's system prompt and a preference file without
    one give the same text)."""
    if isinstance(context, str):
        return f"user: {context}"
    msgs = [m for m in context if m.get("role") != "system" and message_text(m).strip()]
    return "\n".join(f"{m.get('role', 'user')}: {message_text(m)}" for m in msgs[-turns:])


def data_hash(pairs: Sequence[Any]) -> str:
    """sha256 of the pairs' (context, chosen, rejected), in order: identifies the training data in the config."""
    h = hashlib.sha256()
    for p in pairs:
        row = [[dict(m) for m in p.context], p.chosen, p.rejected]
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------ the model
def resolve_backbone(backbone: str) -> str:
    """``"minilm"`` -> the bundled all-MiniLM-L6-v2 directory; anything else (a local directory or a hub id of
    a Hugging Face encoder) is returned as is."""
    if backbone in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        from .embeddings import minilm_path

        return minilm_path()
    return str(Path(backbone).expanduser()) if Path(backbone).expanduser().exists() else backbone


class TextEncoder(nn.Module):
    """A Hugging Face encoder with mean pooling and L2 normalisation: for all-MiniLM-L6-v2 this is exactly the
    sentence-transformers pipeline (tested), so the frozen embeddings equal those of the ``consistency`` reward.

    For training with ``num_layers_unfrozen = k > 0`` the encoder is split at layer ``split = n_layers - k``:
    :meth:`trunk_states` gives the (frozen) token states entering layer ``split``, :meth:`top` runs the trainable
    layers on them. Scoring always runs the whole model in one pass (the top layers are the model's own modules,
    so their fine-tuned weights are used); :meth:`check_split` verifies both paths agree for an architecture.
    """

    def __init__(self, backbone: str = "minilm", num_layers_unfrozen: int = 0, max_length: int = 256):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.backbone = backbone
        source = resolve_backbone(backbone)
        local = Path(source).is_dir()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
            self.model = AutoModel.from_pretrained(source, local_files_only=local)
        except OSError as err:
            raise RewardModelError(f"backbone {backbone!r}: cannot load a Hugging Face encoder from {source!r} "
                                   f"({err}); use 'minilm' (bundled, offline) or a local model directory") from err
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.hidden_size = int(self.model.config.hidden_size)
        layers = self._layers()
        self.num_layers = len(layers) if layers is not None else 0
        k = int(num_layers_unfrozen)
        if k < 0 or (k > 0 and layers is None) or k > self.num_layers:
            where = f"it has {self.num_layers} layers" if layers is not None else "it has no encoder.layer list"
            raise RewardModelError(f"num_layers_unfrozen={k} does not fit backbone {backbone!r} ({where}); use 0 "
                                   f"(frozen) or 1..{self.num_layers}")
        self.num_layers_unfrozen = k
        self.split = self.num_layers - k
        self.max_length = int(max_length)
        if k:
            for layer in layers[self.split:]:
                for p in layer.parameters():
                    p.requires_grad_(True)

    def _layers(self) -> nn.ModuleList | None:
        enc = getattr(self.model, "encoder", None)
        layers = getattr(enc, "layer", None)
        return layers if isinstance(layers, nn.ModuleList) else None

    @property
    def top_layers(self) -> list[nn.Module]:
        layers = self._layers()
        return list(layers[self.split:]) if layers is not None and self.num_layers_unfrozen else []

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The fine-tuned top layers' weights (empty when frozen), keyed as in ``self.model.state_dict()``."""
        if not self.num_layers_unfrozen:
            return {}
        prefixes = tuple(f"encoder.layer.{i}." for i in range(self.split, self.num_layers))
        return {k: v for k, v in self.model.state_dict().items() if k.startswith(prefixes)}

    def tokenize(self, texts: Sequence[str], side: str = "right") -> dict[str, torch.Tensor]:
        """Padded batch; ``side="left"`` truncates from the start (keeps the latest turns of a long context)."""
        self.tokenizer.truncation_side = side
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=True,
                             return_tensors="pt")
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in enc.items()}

    @staticmethod
    def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean over real tokens, then unit norm: ``(B, T, D), (B, T) -> (B, D)``."""
        m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, D)
        return nn.functional.normalize(mean, dim=-1)

    def forward(self, texts: Sequence[str], side: str = "right") -> torch.Tensor:
        """Unit embeddings ``(B, D)`` of ``texts`` through the whole model (gradients flow to unfrozen layers)."""
        enc = self.tokenize(texts, side)
        hidden = self.model(**enc).last_hidden_state  # (B, T, D)
        return self.pool(hidden, enc["attention_mask"])

    @torch.no_grad()
    def trunk_states(self, texts: Sequence[str], side: str = "right") -> list[torch.Tensor]:
        """Per text, the token states entering layer ``split`` (the last layer's output when frozen), unpadded:
        a list of ``(T_i, D)`` tensors."""
        enc = self.tokenize(texts, side)
        out = self.model(**enc, output_hidden_states=self.split < self.num_layers)
        hidden = out.last_hidden_state if self.split == self.num_layers else out.hidden_states[self.split]
        lengths = enc["attention_mask"].sum(1).tolist()
        return [hidden[i, :n].clone() for i, n in enumerate(lengths)]

    def top(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        """Unit embeddings ``(B, D)`` from trunk states: pad, run the trainable top layers, pool."""
        T = max(s.shape[0] for s in states)
        D = states[0].shape[-1]
        x = states[0].new_zeros(len(states), T, D)  # (B, T, D)
        mask = states[0].new_zeros(len(states), T)  # (B, T)
        for i, s in enumerate(states):
            x[i, :s.shape[0]] = s
            mask[i, :s.shape[0]] = 1.0
        # additive attention mask (B, 1, 1, T): 0 on real tokens, the dtype's minimum on padding
        additive = (1.0 - mask[:, None, None, :]) * torch.finfo(x.dtype).min
        for layer in self.top_layers:
            out = layer(x, attention_mask=additive)
            x = out[0] if isinstance(out, tuple) else out
        return self.pool(x, mask)

    @torch.no_grad()
    def check_split(self, texts: Sequence[str] = ("Hello, my bill is wrong.", "Thanks!")) -> None:
        """Raise if trunk + top does not reproduce the full forward (an architecture this split does not fit)."""
        if not self.num_layers_unfrozen:
            return
        was = self.model.training
        self.model.eval()
        full = self.forward(texts)
        split = self.top(self.trunk_states(texts))
        self.model.train(was)
        if not torch.allclose(full, split, atol=1e-4):
            raise RewardModelError(f"backbone {self.backbone!r}: running its top {self.num_layers_unfrozen} layers "
                                   f"on cached states does not reproduce its forward pass (max diff "
                                   f"{(full - split).abs().max():.2e}); use num_layers_unfrozen=0 with it")


@dataclass
class RewardModelConfig(ConfigBase):
    """What a saved reward model is: everything needed to rebuild it, plus what it was trained on and scored."""

    config_label = "reward-model config field"

    kind: str = "embedding"
    """"embedding": a sentence encoder + MLP over [r, c, r*c, |r-c|] (this module); "lm": a causal LM with a scalar
    head on the last token of the chat-formatted context + reply (:mod:`rewards.learned_lm`)."""
    backbone: str = "minilm"
    """kind embedding: "minilm" (bundled all-MiniLM-L6-v2) or a Hugging Face encoder directory / hub id; kind lm:
    "smollm2-135m", "tiny-random" (registered by dialogue_env) or a causal LM directory / hub id."""
    num_layers_unfrozen: int = 0
    """Top backbone layers fine-tuned (0 = frozen backbone, only the head is trained)."""
    context_turns: int = 3
    """Last non-system turns of the conversation the model reads."""
    max_length: int = 256
    """Tokens per text (contexts keep their end, replies their start)."""
    hidden: int = 256
    """Hidden units of the head MLP (0 = a linear head)."""
    dropout: float = 0.1
    """Dropout in the head, during training."""
    embedding_dim: int = 384
    """The backbone's hidden size (checked on load)."""
    score_mean: float = 0.0
    """Mean of the raw score over the training replies (chosen and rejected); the reward subtracts it."""
    score_std: float = 1.0
    """Standard deviation of the raw score over the training replies; the reward divides by it."""
    training: dict = field(default_factory=dict)
    """How it was trained: data source and sha256, pair counts, epochs, learning rates, seed, seconds."""
    metrics: dict = field(default_factory=dict)
    """Held-out results: accuracy (overall and by rejected_kind), loss; training accuracy and loss."""

    @property
    def head_sizes(self) -> list[int]:
        """Layer widths of the head: features -> hidden -> 1."""
        f = self.embedding_dim if self.kind == "lm" else 4 * self.embedding_dim
        return [f, self.hidden, 1] if self.hidden else [f, 1]

    def to_json(self) -> dict:
        if self.kind == "lm":  # version 2: a reader of version 1 (no `kind`) must refuse it, not misread it
            return {"format": FORMAT, "version": VERSION, **self.to_dict(), "head_sizes": self.head_sizes,
                    "features": "final hidden state of the causal LM at the last token of the ChatML context + reply"}
        return {"format": FORMAT, "version": 1, **self.to_dict(), "head_sizes": self.head_sizes,
                "features": "[r, c, r*c, |r-c|] of unit MiniLM-style embeddings (c: context, r: reply)"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RewardModelConfig:
        """From :meth:`to_json`'s output: its descriptive keys (format, version, head_sizes, ...) are skipped."""
        return cls.from_dict({k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class RewardModel(SavedWeights, nn.Module):
    """Sentence encoder + MLP head: ``s(x, y) = MLP([r, c, r*c, |r-c|])`` (module docstring). ``forward`` takes
    embeddings; :meth:`score` takes conversations and replies."""

    def __init__(self, config: RewardModelConfig, encoder: TextEncoder | None = None):
        super().__init__()
        self.config = config
        self.encoder = encoder or TextEncoder(config.backbone, config.num_layers_unfrozen, config.max_length)
        if self.encoder.hidden_size != config.embedding_dim:
            raise RewardModelError(f"backbone {config.backbone!r} has hidden size {self.encoder.hidden_size}, the "
                                   f"config says {config.embedding_dim}")
        self.head = make_head(config.head_sizes, config.dropout)
        self._context_cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @staticmethod
    def features(c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``(B, D), (B, D) -> (B, 4D)``: reply, context, their product and absolute difference."""
        return torch.cat([r, c, r * c, (r - c).abs()], dim=-1)

    def forward(self, c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Raw scores ``(B,)`` from unit context and reply embeddings ``(B, D)``."""
        return self.head(self.features(c, r)).squeeze(-1)

    saved_prefix = "encoder"  # model.safetensors: head.* and the fine-tuned encoder.<layer> weights

    def _tuned(self) -> dict[str, torch.Tensor]:
        return self.encoder.trainable_state()

    def _tuned_module(self) -> nn.Module:
        return self.encoder.model

    @torch.no_grad()
    def embed(self, texts: Sequence[str], side: str = "right", batch_size: int = 64) -> torch.Tensor:
        """Unit embeddings ``(N, D)``, in batches of similar length."""
        if not texts:
            return torch.zeros(0, self.config.embedding_dim)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.config.embedding_dim, device=next(self.parameters()).device)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            out[idx] = self.encoder([texts[i] for i in idx], side=side).float()
        return out

    @torch.no_grad()
    def score(self, contexts: Sequence[Context | str], responses: Sequence[str], normalize: bool = True,
              batch_size: int = 64, cache_size: int = 4096) -> np.ndarray:
        """Scores ``(B,)`` of replies to conversations (float64). ``normalize``: ``(s - score_mean) / score_std``
        (the training replies' statistics, so 0 is an average training reply). Each distinct context and reply
        is embedded once per call; context embeddings are also kept in an LRU of ``cache_size`` (dataset
        prompts recur across episodes)."""
        if len(contexts) != len(responses):
            raise ValueError(f"learned reward: {len(contexts)} contexts for {len(responses)} responses")
        if not responses:
            return np.zeros(0)
        self.eval()
        ctx_texts = [format_context(c, self.config.context_turns) for c in contexts]
        unique_ctx = [t for t in dict.fromkeys(ctx_texts) if t not in self._context_cache]
        new = self.embed(unique_ctx, side="left", batch_size=batch_size)
        for t, e in zip(unique_ctx, new):
            self._context_cache[t] = e.clone()
        c = torch.stack([self._context_cache[t] for t in ctx_texts])  # (B, D)
        for t in dict.fromkeys(ctx_texts):
            self._context_cache.move_to_end(t)
        while len(self._context_cache) > cache_size:
            self._context_cache.popitem(last=False)
        unique_resp = list(dict.fromkeys(responses))
        emb = self.embed(unique_resp, batch_size=batch_size)
        pos = {t: i for i, t in enumerate(unique_resp)}
        r = emb[[pos[t] for t in responses]]  # (B, D)
        s = self(c, r).double().cpu().numpy()
        if normalize:
            s = (s - self.config.score_mean) / max(self.config.score_std, 1e-8)
        return s


# ------------------------------------------------------------------------------------------------ saving
def save_reward_model(model: RewardModel, out: str | os.PathLike, config: RewardModelConfig | None = None) -> Path:
    """Write ``out/reward_model.json`` and ``out/model.safetensors`` atomically: both go to a temporary directory
    next to ``out``, which is then renamed into place (an existing ``out`` is replaced only once the new one is
    complete)."""
    from safetensors.torch import save_file

    config = config or model.config
    out = check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out) as tmp:
        save_file(model.state_for_saving(), str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        (tmp / CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8")
    return out


def check_out_dir(out: str | os.PathLike) -> Path:
    """``out`` as a Path if a reward model may be written there: it does not exist, is an empty directory, or holds
    a reward model (which will be replaced); else a :class:`RewardModelError`."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or (not (out / CONFIG_FILE).is_file() and any(out.iterdir()))):
        raise RewardModelError(f"--out {out} exists and is not a reward-model directory; choose a new or empty "
                               "directory (an existing reward model there would be replaced)")
    return out


def _read_config(path: Path) -> RewardModelConfig:
    """The config of a reward-model directory, or a :class:`RewardModelError` naming the path and the fix."""
    if not path.exists():
        raise RewardModelError(f"reward model {path}: no such directory; {TRAIN_HINT.replace('DIR', str(path))}")
    if not path.is_dir():
        raise RewardModelError(f"reward model {path} is a file, not a reward-model directory (it should hold "
                               f"{CONFIG_FILE} and {WEIGHTS_FILE}); {TRAIN_HINT}")
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise RewardModelError(f"{path} is not a reward-model directory: it has no {CONFIG_FILE}; pass the --out "
                               f"directory of a training run, or {TRAIN_HINT}")
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RewardModelError(f"{cfg_path} is not valid JSON ({err}); retrain: {TRAIN_HINT}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RewardModelError(f"{cfg_path} is not a dialogue-rl reward-model config (format should be {FORMAT!r}); "
                               f"{TRAIN_HINT}")
    if int(data.get("version", 0)) > VERSION:
        raise RewardModelError(f"{cfg_path} has format version {data.get('version')}, newer than this dialogue-rl "
                               f"reads ({VERSION}); upgrade dialogue-rl or retrain")
    if not (path / WEIGHTS_FILE).is_file():
        raise RewardModelError(f"{path} has {CONFIG_FILE} but no {WEIGHTS_FILE} (an interrupted copy?); retrain: "
                               f"{TRAIN_HINT.replace('DIR', str(path))}")
    return RewardModelConfig.from_json(data)


def load_reward_model(path: str | os.PathLike, device: Any = "cpu") -> Any:
    """Rebuild a saved :class:`RewardModel` or, for ``kind: lm``, :class:`rewards.learned_lm.LMRewardModel` (eval
    mode, on ``device``). Raises :class:`RewardModelError` when
    ``path`` is not a complete reward-model directory or its weights do not match its config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    cfg = _read_config(path)
    if cfg.kind == "lm":
        from .learned_lm import LMRewardModel

        model: Any = LMRewardModel(cfg)
    elif cfg.kind == "embedding":
        model = RewardModel(cfg)
    else:
        raise RewardModelError(f"{path / CONFIG_FILE}: unknown kind {cfg.kind!r} (this dialogue-rl reads "
                               f"'embedding' and 'lm'); upgrade dialogue-rl or retrain")
    try:
        state = load_file(str(path / WEIGHTS_FILE))
    except (SafetensorError, OSError) as err:
        raise RewardModelError(f"{path / WEIGHTS_FILE} cannot be read ({err}); retrain: {TRAIN_HINT}") from err
    expected = set(model.state_for_saving())
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise RewardModelError(f"{path / WEIGHTS_FILE} does not match {CONFIG_FILE} (missing {missing[:4]}, "
                               f"unexpected {extra[:4]}); retrain: {TRAIN_HINT}")
    try:
        model.load_saved(state)
    except RuntimeError as err:
        raise RewardModelError(f"{path / WEIGHTS_FILE}: weights do not fit the model its config describes ({err}); "
                               f"retrain: {TRAIN_HINT}") from err
    return model.to(device).eval()


# ------------------------------------------------------------------------------------------------ the reward
_LOCK = threading.Lock()
_MODELS: dict[tuple[str, int, str], RewardModel] = {}


def _cached_model(path: Path, device: str) -> RewardModel:
    """One loaded model per (directory, version of its files, device) and process."""
    try:
        version = (path / WEIGHTS_FILE).stat().st_mtime_ns
    except OSError:  # deleted or moved since the module was built: say so clearly
        _read_config(path)
        raise
    key = (str(path), version, device)
    model = _MODELS.get(key)
    if model is None:
        with _LOCK:
            model = _MODELS.get(key)
            if model is None:
                model = load_reward_model(path, device)
                _MODELS[key] = model
    return model


def clear_cache() -> None:
    """Forget the loaded reward models (they are reloaded on the next call)."""
    with _LOCK:
        _MODELS.clear()


class LearnedReward:
    """The reward of a trained preference model: ``(s(x, y) - mean) / std`` with ``s`` the Bradley–Terry score
    and mean / std its statistics over the training replies (``normalize=False``: the raw ``s``), clipped to
    ``clip`` standard deviations either side of the mean (default 5: ``[-5, 5]`` normalised, ``mean +- 5 std``
    raw). The clip is the module's ``bounds``, which a composite needs to gate it (e.g. with ``ethics``): an MLP's
    score has no useful bound of its own, and scores beyond 5 std of every training reply are extrapolation the
    policy could exploit. ``clip=None`` returns the scores unclipped and declares no bounds (then the module
    cannot be gated).

    ``path`` is a directory written by ``dialogue-rl reward-model train --out DIR`` (default: the environment
    variable ``DIALOGUE_RL_REWARD_MODEL``); it is checked when the module is built, so a wrong path fails at
    ``rewards.make`` with a message saying how to train one. The model itself is loaded on the first call and
    cached once per process and device; the module pickles as its path and options only.

    Example::

        >>> r = rewards.make("learned", path="runs/reward_model")
        >>> r([[{"role": "user", "content": "My parcel is late."}]] * 2,
        ...   ["Sorry about that! Let me check the tracking for you now.", "Not my problem."])
        [1.3, -2.1]
    """

    name = "learned"
    kind = "additive"

    def __init__(self, path: str | os.PathLike | None = None, device: Any = None, normalize: bool = True,
                 batch_size: int = 64, clip: float | None = 5.0):
        if path is None:
            path = os.environ.get(ENV_PATH)
        if path is None or str(path) == "":
            raise RewardModelError("the 'learned' reward needs the directory of a trained reward model: "
                                   "rewards.make('learned', path=DIR) or reward={'learned': {'weight': 1.0, "
                                   f"'path': DIR}}}} (or set {ENV_PATH}=DIR); {TRAIN_HINT}")
        self.path = str(Path(path).expanduser().resolve())
        self.config = _read_config(Path(self.path))  # fail now, not at the first rollout
        self.device = None if device is None else str(device)
        self.normalize = bool(normalize)
        self.batch_size = int(batch_size)
        if clip is not None and not (isinstance(clip, (int, float)) and 0 < clip < float("inf")):
            raise ValueError(f"learned reward: clip must be a positive number of standard deviations or None, "
                             f"got {clip!r}")
        self.clip = None if clip is None else float(clip)

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The range of the values: ``(-clip, clip)`` normalised, ``mean -+ clip * std`` raw; None unclipped."""
        if self.clip is None:
            return None
        if self.normalize:
            return -self.clip, self.clip
        mean, std = self.config.score_mean, max(self.config.score_std, 1e-8)
        return mean - self.clip * std, mean + self.clip * std

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str], **kwargs: Any) -> list[float]:
        from .embeddings import resolve_device

        model = _cached_model(Path(self.path), resolve_device(self.device))
        s = model.score(contexts, responses, normalize=self.normalize, batch_size=self.batch_size)
        if self.clip is not None:
            s = np.clip(s, *self.bounds)
        return s.tolist()

    def __repr__(self) -> str:
        return (f"LearnedReward(path={self.path!r}, device={self.device!r}, normalize={self.normalize}, "
                f"clip={self.clip})")

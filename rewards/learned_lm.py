"""The ``learned`` reward on a language-model backbone: a causal LM reads the conversation and the reply, and a
scalar head on the hidden state of the last token scores it (as in InstructGPT's and TRL's reward models)::

    text    = ChatML of the last k turns of x, then the reply y:  "<|im_start|>user\\n...<|im_end|>\\n
              <|im_start|>assistant\\n{y}<|im_end|>"
    h       = final hidden state of the decoder (after its norm) at the last token of text
    s(x, y) = head(h)                                   a scalar; higher = better

trained with the same Bradley–Terry loss as the sentence-encoder model (:mod:`rewards.learned_train`). The decoder
is split at layer ``split = n_layers - k``: the lower layers (the trunk) stay frozen, so their states for every
training text are computed once; each epoch runs only the top ``k`` layers (their own modules, fed the trunk's
states as ``inputs_embeds``) and the head. ``k = 0`` trains the head alone on the frozen last-token state.

A saved model (``reward_model.json`` with ``"kind": "lm"``, and ``model.safetensors`` with ``head.*`` and the fine-
tuned ``backbone.layers.<i>.*`` / ``backbone.norm.*`` weights) names its backbone: ``smollm2-135m`` and
``tiny-random`` are provided by :mod:`dialogue_env` (importing it registers them, see
:func:`register_lm_backbone`); any other name is a local directory or hub id of a Hugging Face causal LM, loaded with
``AutoModelForCausalLM``. Llama-style decoders (``get_decoder()`` with ``layers``, ``norm``; SmolLM2, Llama, Qwen2,
Mistral) are supported.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .base import Context, RewardModelError, message_text

__all__ = ["LMBackbone", "LMRewardModel", "SavedWeights", "chat_text", "is_causal_lm", "lm_backbone_names",
           "register_lm_backbone"]

_LOADERS: dict[str, Callable[[str], tuple[Any, Any]]] = {}
_LOCK = threading.Lock()


def register_lm_backbone(names: Sequence[str], loader: Callable[[str], tuple[Any, Any]]) -> None:
    """Make ``names`` loadable as LM reward-model backbones: ``loader(name) -> (causal LM, tokenizer)``.
    :mod:`dialogue_env` registers its built-in models (``smollm2-135m``, ``tiny-random``) when imported."""
    with _LOCK:
        for name in names:
            _LOADERS[str(name)] = loader


def lm_backbone_names() -> list[str]:
    """The registered built-in backbone names."""
    return sorted(_LOADERS)


def is_causal_lm(backbone: str) -> bool:
    """True when ``backbone`` names a registered LM or a local model directory whose config declares a
    ``...ForCausalLM`` architecture."""
    if backbone in _LOADERS:
        return True
    cfg = Path(backbone).expanduser() / "config.json"
    if cfg.is_file():
        import json

        try:
            arch = json.loads(cfg.read_text(encoding="utf-8")).get("architectures") or []
        except (OSError, ValueError):
            return False
        return any(str(a).endswith("ForCausalLM") for a in arch)
    return False


def _load_lm(backbone: str) -> tuple[Any, Any]:
    if backbone in _LOADERS:
        return _LOADERS[backbone](backbone)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(backbone).expanduser()
    local = source.is_dir()
    try:
        tok = AutoTokenizer.from_pretrained(str(source) if local else backbone, local_files_only=local)
        lm = AutoModelForCausalLM.from_pretrained(str(source) if local else backbone, local_files_only=local,
                                                  dtype=torch.float32)
    except OSError as err:
        hint = (f"built-in names ({', '.join(lm_backbone_names())}) are registered by `import dialogue_env`"
                if _LOADERS else "the built-in names (smollm2-135m, tiny-random) need `import dialogue_env` first")
        raise RewardModelError(f"LM backbone {backbone!r}: cannot load a Hugging Face causal LM from it ({err}); "
                               f"use a local model directory, or a built-in name ({hint})") from err
    return lm, tok


class SavedWeights:
    """What a reward model writes to model.safetensors and reads back: ``head.*`` and, under ``saved_prefix``, the
    fine-tuned backbone weights that ``_tuned()`` returns from ``_tuned_module()``'s state dict."""

    saved_prefix = "backbone"

    def state_for_saving(self) -> dict[str, torch.Tensor]:
        state = {f"head.{k}": v for k, v in self.head.state_dict().items()}
        state.update({f"{self.saved_prefix}.{k}": v for k, v in self._tuned().items()})
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def load_saved(self, state: dict[str, torch.Tensor]) -> None:
        """Load :meth:`state_for_saving`'s output (keys already checked by the caller)."""
        self.head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
        prefix = f"{self.saved_prefix}."
        tuned = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if tuned:
            self._tuned_module().load_state_dict(tuned, strict=False)


def make_head(sizes: Sequence[int], dropout: float) -> nn.Sequential:
    """The scoring head for layer widths ``sizes``: ``[f, h, 1]`` -> Linear, GELU, Dropout, Linear; ``[f, 1]`` ->
    one Linear."""
    if len(sizes) == 3:
        return nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.GELU(), nn.Dropout(dropout), nn.Linear(sizes[1], 1))
    return nn.Sequential(nn.Linear(sizes[0], 1))


def chat_text(context: Context | str, reply: str, turns: int = 3) -> str:
    """What the LM reward model reads: the last ``turns`` non-system messages of ``context`` and the reply as the
    assistant's turn, in ChatML (system prompts are skipped, as in :func:`rewards.learned.format_context`)."""
    if isinstance(context, str):
        context = [{"role": "user", "content": context}]
    msgs = [m for m in context if m.get("role") != "system" and message_text(m).strip()][-turns:] if turns else []
    msgs = [*msgs, {"role": "assistant", "content": reply}]
    return "\n".join(f"<|im_start|>{m.get('role', 'user')}\n{message_text(m)}<|im_end|>" for m in msgs)


class LMBackbone(nn.Module):
    """A causal LM's decoder (its LM head is dropped) split into a frozen trunk and ``k`` trainable top layers.

    :meth:`forward` runs the whole decoder and returns the last token's final hidden state ``(B, H)``;
    :meth:`trunk_states` gives, per text, the states entering layer ``split`` (``k = 0``: the last token's final
    state); :meth:`top` finishes the forward from those states. :meth:`check_split` verifies both paths agree."""

    def __init__(self, backbone: str, num_layers_unfrozen: int = 2, max_length: int = 384):
        super().__init__()
        self.backbone = backbone
        lm, self.tokenizer = _load_lm(backbone)
        decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else getattr(lm, "model", None)
        layers = getattr(decoder, "layers", None)
        if not isinstance(layers, nn.ModuleList) or not hasattr(decoder, "norm"):
            raise RewardModelError(f"LM backbone {backbone!r} ({type(lm).__name__}) is not a Llama-style decoder "
                                   "(get_decoder() with .layers and .norm); use SmolLM2, Llama, Qwen2 or Mistral")
        self.decoder = decoder.float().eval()
        self.decoder.requires_grad_(False)
        self.hidden_size = int(decoder.config.hidden_size)
        self.num_layers = len(layers)
        k = int(num_layers_unfrozen)
        if not 0 <= k <= self.num_layers:
            raise RewardModelError(f"num_layers_unfrozen={k} does not fit LM backbone {backbone!r} ({self.num_layers} "
                                   f"layers); use 0 (head only) .. {self.num_layers}")
        self.num_layers_unfrozen = k
        self.split = self.num_layers - k
        self.max_length = int(max_length)
        self._top = None
        if k:
            # The top: a decoder of k layers that shares the backbone's top layers, norm and rotary embedding, fed
            # trunk states as inputs_embeds (its own embedding table is a 1-token stub).
            cfg = copy.deepcopy(decoder.config)
            cfg.num_hidden_layers, cfg.vocab_size, cfg.pad_token_id, cfg.use_cache = k, 1, None, False
            if getattr(cfg, "layer_types", None):
                cfg.layer_types = list(cfg.layer_types)[self.split:]
            top = type(decoder)(cfg)
            top.layers = nn.ModuleList(list(layers[self.split:]))
            top.norm = decoder.norm
            if hasattr(decoder, "rotary_emb"):
                top.rotary_emb = decoder.rotary_emb
            top.embed_tokens = None
            self._top = [top.eval()]  # a list: not a submodule (its parameters are the decoder's own)
            for layer in layers[self.split:]:
                layer.requires_grad_(True)
            decoder.norm.requires_grad_(True)

    @property
    def top_modules(self) -> list[nn.Module]:
        """The trainable modules: the top ``k`` layers and the final norm (empty when ``k = 0``)."""
        if not self.num_layers_unfrozen:
            return []
        return [*self.decoder.layers[self.split:], self.decoder.norm]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The fine-tuned weights, keyed as in ``self.decoder.state_dict()`` (``layers.<i>.*``, ``norm.*``)."""
        if not self.num_layers_unfrozen:
            return {}
        prefixes = (*(f"layers.{i}." for i in range(self.split, self.num_layers)), "norm.")
        return {k: v for k, v in self.decoder.state_dict().items() if k.startswith(prefixes)}

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, the last ``max_length`` kept (the reply and its end token matter most)."""
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [list(x[-self.max_length:]) or [0] for x in ids]

    def _pad(self, seqs: Sequence[Any], value: Any = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded batch ``(B, T[, H])`` and its mask ``(B, T)`` from id lists or ``(T_i, H)`` tensors."""
        device = next(self.decoder.parameters()).device
        T = max(len(s) for s in seqs)
        mask = torch.zeros(len(seqs), T, dtype=torch.long, device=device)
        if torch.is_tensor(seqs[0]):
            x = seqs[0].new_zeros(len(seqs), T, seqs[0].shape[-1])
        else:
            x = torch.full((len(seqs), T), int(value), dtype=torch.long, device=device)
        for i, s in enumerate(seqs):
            x[i, :len(s)] = s if torch.is_tensor(s) else torch.as_tensor(s, device=device)
            mask[i, :len(s)] = 1
        return x.to(device), mask

    @staticmethod
    def _last(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The state at each row's last real token: ``(B, T, H) -> (B, H)`` (right padding)."""
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.sum(1) - 1]

    def forward(self, ids: Sequence[Sequence[int]], decoder: nn.Module | None = None) -> torch.Tensor:
        """Last-token final hidden states ``(B, H)`` through the whole decoder (gradients reach the top layers);
        ``decoder``: another copy of it to run instead (e.g. in bfloat16)."""
        x, mask = self._pad(ids)
        decoder = self.decoder if decoder is None else decoder
        hidden = decoder(input_ids=x, attention_mask=mask, use_cache=False).last_hidden_state  # (B, T, H)
        return self._last(hidden, mask)

    @torch.no_grad()
    def trunk_states(self, ids: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Per text: the ``(T_i, H)`` states entering layer ``split``, or with ``k = 0`` the ``(H,)`` final state of
        its last token."""
        x, mask = self._pad(ids)
        if not self.num_layers_unfrozen:
            return list(self.forward(ids).float())
        out = self.decoder(input_ids=x, attention_mask=mask, use_cache=False, output_hidden_states=True)
        hidden = out.hidden_states[self.split]  # (B, T, H)
        return [hidden[i, :len(s)].float().clone() for i, s in enumerate(ids)]

    def top(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        """Last-token final hidden states ``(B, H)`` from trunk states (``k = 0``: the cached states stacked)."""
        if not self.num_layers_unfrozen:
            return torch.stack(list(states))
        x, mask = self._pad(states)
        hidden = self._top[0](inputs_embeds=x, attention_mask=mask, use_cache=False).last_hidden_state
        return self._last(hidden, mask)

    @torch.no_grad()
    def check_split(self, texts: Sequence[str] = ("<|im_start|>user\nMy bill is wrong.<|im_end|>", "Thanks!")) -> None:
        """Raise if trunk + top does not reproduce the full forward (an architecture this split does not fit)."""
        ids = self.encode(texts)
        full, split = self.forward(ids), self.top(self.trunk_states(ids))
        if not torch.allclose(full, split, atol=1e-4, rtol=1e-4):
            raise RewardModelError(f"LM backbone {self.backbone!r}: running its top {self.num_layers_unfrozen} "
                                   f"layers on cached states does not reproduce its forward pass (max diff "
                                   f"{(full - split).abs().max():.2e}); use num_layers_unfrozen=0 with it")


class LMRewardModel(SavedWeights, nn.Module):
    """Causal LM + scalar head on the last token (module docstring); same interface as
    :class:`rewards.learned.RewardModel`: :meth:`score`, :meth:`state_for_saving`, :meth:`load_saved`."""

    def __init__(self, config: Any, backbone: LMBackbone | None = None):
        super().__init__()
        self.config = config
        self.backbone = backbone or LMBackbone(config.backbone, config.num_layers_unfrozen, config.max_length)
        if self.backbone.hidden_size != config.embedding_dim:
            raise RewardModelError(f"LM backbone {config.backbone!r} has hidden size {self.backbone.hidden_size}, "
                                   f"the config says {config.embedding_dim}")
        self.head = make_head(config.head_sizes, config.dropout)
        self._low: list[nn.Module] = []  # the bfloat16 copy of the decoder for autocast (_inference_decoder)
        nn.init.zeros_(self.head[-1].weight)  # every reply scores 0 at the start: no preference before training
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Raw scores ``(B,)`` from last-token states ``(B, H)``."""
        return self.head(h).squeeze(-1)

    def texts(self, contexts: Sequence[Context | str], responses: Sequence[str]) -> list[str]:
        return [chat_text(c, r, self.config.context_turns) for c, r in zip(contexts, responses)]

    def _tuned(self) -> dict[str, torch.Tensor]:  # saved as backbone.<decoder key>
        return self.backbone.trainable_state()

    def _tuned_module(self) -> nn.Module:
        return self.backbone.decoder

    def _inference_decoder(self) -> nn.Module:
        """The backbone's decoder, or under bfloat16 autocast on its device (the trainer's ``dtype: autocast``) a
        bfloat16 copy of it, made once: autocast would re-cast every float32 weight at every call."""
        device = next(self.backbone.parameters()).device.type
        if not (torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16):
            return self.backbone.decoder
        if not self._low:  # a list, not a submodule: never saved, never trained
            self._low.append(copy.deepcopy(self.backbone.decoder).to(torch.bfloat16))
        return self._low[0]

    @torch.no_grad()
    def score(self, contexts: Sequence[Context | str], responses: Sequence[str], normalize: bool = True,
              batch_size: int = 16) -> np.ndarray:
        """Scores ``(B,)`` (float64) of replies to conversations, in batches of similar length; ``normalize``:
        ``(s - score_mean) / score_std`` (the training replies' statistics)."""
        if len(contexts) != len(responses):
            raise ValueError(f"learned reward: {len(contexts)} contexts for {len(responses)} responses")
        if not responses:
            return np.zeros(0)
        self.eval()
        ids = self.backbone.encode(self.texts(contexts, responses))
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty(len(ids))
        decoder = self._inference_decoder()
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            out[idx] = self(self.backbone([ids[i] for i in idx], decoder).float()).double().cpu().numpy()
        if normalize:
            out = (out - self.config.score_mean) / max(self.config.score_std, 1e-8)
        return out

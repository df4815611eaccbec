"""The PPO policy: a causal LM with a value head, split into a frozen trunk and trainable top layers.

With ``num_layers_unfrozen = k`` only the top ``k`` decoder layers (plus the final norm and, optionally, the LM
head) train. The trunk (embeddings and the lower layers) is then the same function for the policy and for the
frozen reference model, so:

- during generation we keep the trunk's output ``h`` (the hidden state entering layer ``n - k``) for every token;
- the policy's log-probs and values, and the reference's log-probs, are the top ``k`` layers applied to ``h``
  (the reference keeps a frozen copy of the original top layers);
- every PPO epoch re-runs only those ``k`` layers, never the trunk.

For SmolLM2-135M (30 layers) and ``k = 2`` a PPO epoch costs about a fifteenth of a full forward and backward.
``num_layers_unfrozen = -1`` trains every layer (the trunk is then empty: ``h`` is the token embeddings).
``lora_r > 0`` puts LoRA adapters (peft) on the trainable layers instead of training them in full; the reference is
then the same layers with the adapters switched off (no copy: a large model is held once).

The top-layer forward calls the model's own decoder layers with a mask and rotary embeddings built here; it is
tested to reproduce the model's full forward exactly (tests/test_ppo_policy.py). Supported: Llama-style models
(``model.model.layers``, ``model.model.norm``, ``model.model.rotary_emb``), which covers SmolLM2, Llama, Qwen2 and
Mistral. Other architectures raise a clear error.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from dialogue_env.kvcache import position_ids
from rewards.utils import ConfigError

position_ids_from_mask = position_ids  # the name this module used to define (callers and tests import it)


def attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive (B, 1, S, S) mask: query i sees key j iff j <= i and j is a real token. A padded query also sees
    itself, so that no attention row is empty (an empty row would give NaN, and 0 * NaN still poisons sums)."""
    B, S = mask.shape
    causal = torch.ones(S, S, dtype=torch.bool, device=mask.device).tril()  # (S, S)
    allowed = causal.unsqueeze(0) & mask.bool().unsqueeze(1)  # (B, S, S): key j real and j <= i
    allowed = allowed | torch.eye(S, dtype=torch.bool, device=mask.device).unsqueeze(0)
    bias = torch.zeros(B, 1, S, S, dtype=dtype, device=mask.device)
    return bias.masked_fill(~allowed.unsqueeze(1), torch.finfo(dtype).min)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _plain_llama_layer(layer) -> bool:
    """True for a decoder layer whose attention is Llama's (q/k/v/o projections, RoPE, grouped-query heads, no
    q/k norms): the layers ``layer_at_positions`` re-implements."""
    attn = getattr(layer, "self_attn", None)
    return (attn is not None and all(hasattr(attn, a) for a in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim",
                                                              "scaling"))
            and not hasattr(attn, "q_norm") and not hasattr(attn, "k_norm")
            and all(hasattr(layer, a) for a in ("input_layernorm", "post_attention_layernorm", "mlp")))


def layer_at_positions(layer, h: torch.Tensor, bias: torch.Tensor, rope, start: int) -> torch.Tensor:
    """A Llama decoder layer's output at positions ``start:`` only: queries, attention output and MLP for those
    positions, keys and values for all of them. ``h`` (B, S, H) -> (B, S - start, H).

    The last trainable layer only needs the reply's positions (the LM head reads nothing else), so this skips most
    of its work: for a 250-token context and a 48-token reply, about three quarters of the layer. Same maths as
    the model's own layer (tested equal to it)."""
    attn = layer.self_attn
    B, S, _ = h.shape
    d = attn.head_dim
    x = layer.input_layernorm(h)  # (B, S, H)
    q = attn.q_proj(x[:, start:]).view(B, S - start, -1, d).transpose(1, 2)  # (B, heads, S', d)
    k = attn.k_proj(x).view(B, S, -1, d).transpose(1, 2)  # (B, kv_heads, S, d)
    v = attn.v_proj(x).view(B, S, -1, d).transpose(1, 2)
    cos, sin = rope  # (B, S, d) each
    q = q * cos[:, None, start:] + _rotate_half(q) * sin[:, None, start:]
    k = k * cos[:, None] + _rotate_half(k) * sin[:, None]
    groups = q.shape[1] // k.shape[1]  # grouped-query attention: kv head j serves query heads j*groups ...
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    dropout = attn.attention_dropout if attn.training else 0.0
    o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias[:, :, start:], dropout_p=dropout,
                                                         scale=attn.scaling)  # (B, heads, S', d)
    y = h[:, start:] + attn.o_proj(o.transpose(1, 2).reshape(B, S - start, -1))  # (B, S', H)
    return y + layer.mlp(layer.post_attention_layernorm(y))


class PolicyWithValue(nn.Module):
    """A causal LM (HF) + scalar value head, with the trunk / top split described in the module docstring."""

    def __init__(self, lm, num_layers_unfrozen: int = 2, train_lm_head: bool = False, lora_r: int = 0,
                 lora_alpha: int = 16, lora_dropout: float = 0.0):
        super().__init__()
        inner = getattr(lm, "model", None)
        if inner is None or not all(hasattr(inner, a) for a in ("layers", "norm", "rotary_emb", "embed_tokens")):
            raise TypeError(f"{type(lm).__name__} is not a Llama-style causal LM (model.model.layers / norm / "
                            f"rotary_emb / embed_tokens); the PPO agent supports Llama, SmolLM2, Qwen2, Mistral")
        n = len(inner.layers)
        k = n if num_layers_unfrozen is None or num_layers_unfrozen < 0 else int(num_layers_unfrozen)
        if not 1 <= k <= n:
            raise ConfigError(f"num_layers_unfrozen={num_layers_unfrozen} must be in 1..{n} or -1 for all layers")
        self.lm = lm
        self.n_layers, self.k = n, k
        self.split = n - k  # index of the first trainable layer; h = input of layer `split`
        hidden = lm.config.hidden_size
        # Frozen reference head: a copy of the original top layers, final norm and LM head. With LoRA the base
        # weights never change, so the reference is the policy's own layers and norm with the adapters off.
        if lora_r > 0:
            self.ref_layers, self.ref_norm = None, inner.norm
        else:
            self.ref_layers = copy.deepcopy(inner.layers[self.split:])
            self.ref_norm = copy.deepcopy(inner.norm)
            for module in (self.ref_layers, self.ref_norm):
                module.requires_grad_(False)
        self.ref_lm_head = copy.deepcopy(lm.lm_head) if train_lm_head else lm.lm_head
        self.fast_last_layer = True  # the last top layer computes the reply positions only (layer_at_positions)
        self.sharded = False  # set by agents.ppo.distributed.shard_policy (FSDP2)
        # Value head on the policy's final hidden state; starts near zero so early advantages are the rewards.
        self.value_head = nn.Linear(hidden, 1)
        nn.init.normal_(self.value_head.weight, std=1.0 / (hidden ** 0.5) * 0.1)
        nn.init.zeros_(self.value_head.bias)
        self.value_head.to(device=next(lm.parameters()).device)

        lm.requires_grad_(False)
        if lora_r > 0:
            from peft import LoraConfig, inject_adapter_in_model

            config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                                target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                "down_proj"],
                                layers_to_transform=list(range(self.split, n)))
            inject_adapter_in_model(config, lm)
            for name, p in lm.named_parameters():
                p.requires_grad_("lora_" in name)
        else:
            inner.layers[self.split:].requires_grad_(True)
            inner.norm.requires_grad_(True)
        if train_lm_head:
            lm.lm_head.requires_grad_(True)
            if getattr(lm.config, "tie_word_embeddings", False):
                # Untie so that training the head does not move the (frozen) input embeddings of the trunk.
                lm.lm_head.weight = nn.Parameter(lm.lm_head.weight.detach().clone())
        self.lora_r = lora_r

    # ------------------------------------------------------------------------------------------------ parts
    @property
    def inner(self):
        return self.lm.model

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    def _top(self, h, mask, layers, norm, keep_from: int = 0):
        """Run decoder ``layers`` then ``norm`` on ``h`` (B, S, H) with padding ``mask`` (B, S); return positions
        ``keep_from:`` (B, S - keep_from, H). The last layer computes only those positions when it can."""
        pos = position_ids(mask)  # (B, S)
        bias = attention_bias(mask, h.dtype)  # (B, 1, S, S)
        rope = self.inner.rotary_emb(h, position_ids=pos)
        last = len(layers) - 1
        for i, layer in enumerate(layers):
            if i == last and keep_from > 0 and self.fast_last_layer and _plain_llama_layer(layer):
                return norm(layer_at_positions(layer, h, bias, rope, keep_from))
            out = layer(h, attention_mask=bias, position_ids=pos, position_embeddings=rope)
            h = out[0] if isinstance(out, tuple) else out
        return norm(h[:, keep_from:])

    def trunk(self, input_ids, mask):
        """Hidden state entering the first trainable layer, (B, S, H); no gradient."""
        with torch.no_grad():
            h = self.inner.embed_tokens(input_ids)
            if self.split == 0:
                return h
            pos = position_ids(mask)
            bias = attention_bias(mask, h.dtype)
            rope = self.inner.rotary_emb(h, position_ids=pos)
            for layer in self.inner.layers[: self.split]:
                out = layer(h, attention_mask=bias, position_ids=pos, position_embeddings=rope)
                h = out[0] if isinstance(out, tuple) else out
            return h

    def policy_head(self, h, mask, keep_from: int = 0):
        """Policy logits (B, S', V) and values (B, S') from trunk states ``h`` (B, S, H), for positions
        ``keep_from:`` only (the LM head is the costliest layer: skip the context positions)."""
        x = self._top(h, mask, self.inner.layers[self.split:], self.inner.norm, keep_from)
        return self.lm.lm_head(x), self.value_head(x).squeeze(-1)

    def reference_logits(self, h, mask, keep_from: int = 0):
        """Logits of the frozen reference model (B, S', V) from the same trunk states; no gradient."""
        with torch.no_grad():
            if self.ref_layers is not None:
                return self.ref_lm_head(self._top(h, mask, self.ref_layers, self.ref_norm, keep_from))
            adapters = [m for m in self.inner.layers[self.split:].modules() if hasattr(m, "enable_adapters")
                        and hasattr(m, "lora_A")]
            trainable = [p for p in self.parameters() if p.requires_grad]
            for m in adapters:  # LoRA: the base layers alone are the reference
                m.enable_adapters(False)
            try:
                x = self._top(h, mask, self.inner.layers[self.split:], self.ref_norm, keep_from)
            finally:
                for m in adapters:
                    m.enable_adapters(True)
                for p in trainable:  # enable_adapters(False) froze the adapters; put them back as they were
                    p.requires_grad_(True)
            return self.ref_lm_head(x)

    def store_frozen_in(self, dtype: torch.dtype) -> None:
        """Keep every frozen floating-point parameter (the trunk, the embeddings and LM head when not trained, the
        reference head) in ``dtype``; the trained ones stay float32. For bfloat16 autocast on a CPU with bfloat16
        matrix units: autocast re-casts a frozen float32 weight at every call, a stored bfloat16 one is read as is."""
        for p in self.parameters():  # each once (a tied weight too)
            if not p.requires_grad and p.is_floating_point() and p.dtype != dtype:
                p.data = p.data.to(dtype)

    @contextlib.contextmanager
    def frozen_in_float32(self):
        """Within the block, the parameters :meth:`store_frozen_in` lowered are float32 again (their rounded values),
        then lowered back: a checkpoint written here holds one dtype, as a float32 model's does."""
        params = list(self.parameters())
        lowered = [p for p in params if not p.requires_grad and p.is_floating_point() and p.dtype != torch.float32]
        if not any(p.dtype == torch.float32 for p in params):  # a bfloat16 model (dtype: bfloat16): saved as it is
            lowered = []
        dtypes = [p.dtype for p in lowered]
        for p in lowered:
            p.data = p.data.float()
        try:
            yield
        finally:
            for p, dtype in zip(lowered, dtypes):
                p.data = p.data.to(dtype)

    def merged_lm(self):
        """The policy as a plain causal LM (LoRA merged into a copy), for saving and evaluation."""
        if self.lora_r <= 0:
            return self.lm
        merged = copy.deepcopy(self.lm)
        for module in merged.modules():
            if hasattr(module, "merge") and hasattr(module, "lora_A"):
                module.merge()
        from peft.tuners.tuners_utils import BaseTunerLayer

        # Replace each LoRA layer by its (now merged) base layer.
        for module in list(merged.modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, BaseTunerLayer):
                    setattr(module, child_name, child.get_base_layer())
        return merged

"""The pure maths of token-level PPO for language models.

Every function here is stateless and works on batches of responses laid out as ``(B, T)`` tensors: ``B`` replies,
``T`` response-token positions. Replies have different lengths, so each function takes a ``mask`` of shape
``(B, T)`` (bool or float 0/1) that is true on real tokens. Padded positions never influence a result, even when
they hold garbage (NaN, inf): inputs are read through ``torch.where(mask, x, 0)``, which also keeps gradients at
padded positions exactly zero. Outputs of shape ``(B, T)`` are 0 at padded positions.

In this project the real tokens of a row are a contiguous prefix (right padding: the reply, then padding).
``gae`` and ``token_rewards`` also handle left padding and holes: they treat the real tokens of a row, in order,
as the episode and skip everything else.

References:
    - Schulman, Wolski, Dhariwal, Radford, Klimov (2017), "Proximal Policy Optimization Algorithms" (PPO).
    - Schulman, Moritz, Levine, Jordan, Abbeel (2016), "High-Dimensional Continuous Control Using Generalized
      Advantage Estimation" (GAE).
    - Schulman (2020), "Approximating KL Divergence", http://joschu.net/blog/kl-approx.html (k1, k2, k3).
    - Ziegler et al. (2019), "Fine-Tuning Language Models from Human Preferences" (per-token KL penalty).
    - Huang et al. (2022), "The 37 Implementation Details of Proximal Policy Optimization" (CleanRL's approx_kl,
      clipfrac, value clipping).
"""

from __future__ import annotations

import torch

KL_ESTIMATORS = ("k1", "k2", "k3")


def _as_bool(mask: torch.Tensor) -> torch.Tensor:
    """A float 0/1 or bool mask as a bool tensor."""
    return mask if mask.dtype == torch.bool else mask != 0


def _zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with padded positions set to 0 (NaN/inf there included); gradient at padded positions is 0."""
    return torch.where(_as_bool(mask), x, torch.zeros((), dtype=x.dtype, device=x.device))


# ---------------------------------------------------------------------------------------------------------------
# Masked statistics
# ---------------------------------------------------------------------------------------------------------------


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x`` over real positions: ``sum_i m_i x_i``.

    Args:
        x: values, e.g. ``(B, T)``.
        mask: same shape as ``x``; true (or 1) on real positions.
        dim: reduce over this dimension only (``dim=1`` gives one sum per row, ``(B,)``); ``None`` sums everything.
    """
    x = _zero_padding(x, mask)
    return x.sum() if dim is None else x.sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over real positions: ``sum_i m_i x_i / sum_i m_i``.

    With ``dim=None`` this is the token-level mean over the whole batch (every real token weighs the same, so
    long replies weigh more than short ones); ``dim=1`` gives one mean per row. A reduction with no real position
    is 0/0 = NaN.
    """
    count = _as_bool(mask).to(x.dtype)
    return masked_sum(x, mask, dim) / (count.sum() if dim is None else count.sum(dim=dim))


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True, dim: int | None = None) -> torch.Tensor:
    """Variance of ``x`` over real positions.

    ``mu = masked_mean(x)``, ``var = sum_i m_i (x_i - mu)^2 / (n - 1)`` with ``n = sum_i m_i`` when ``unbiased``
    (Bessel's correction, as ``torch.var``), else ``/ n``. Like ``torch.var``, the unbiased variance of a single
    value is NaN (0/0).
    """
    x = _zero_padding(x, mask)  # garbage at padded positions must not reach the gradient either
    mean = masked_mean(x, mask, dim)
    centered = x - (mean if dim is None else mean.unsqueeze(dim))
    sq_sum = masked_sum(centered.square(), mask, dim)
    count = _as_bool(mask).to(x.dtype)
    n = count.sum() if dim is None else count.sum(dim=dim)
    return sq_sum / (n - 1) if unbiased else sq_sum / n


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8, unbiased: bool = True,
    mean_var: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Normalise ``x`` to zero mean and unit variance over the real positions of the whole batch.

    ``y_i = (x_i - mu) / sqrt(var + eps)``, with ``mu``, ``var`` from ``masked_mean`` / ``masked_var`` over every
    real token of the batch. With ``shift_mean=False`` the mean is added back, ``y_i = (x_i - mu) / sqrt(var + eps)
    + mu``: the scale is normalised but the sign of the mean is kept (used to whiten rewards, whose mean carries
    signal). Padded positions are 0 in the output. ``mean_var``: use these statistics instead of the batch's own
    (data-parallel training whitens with those of every process's batch together, ``agents.ppo.distributed``).
    """
    x = _zero_padding(x, mask)  # (B, T)
    if mean_var is None:
        mean = masked_mean(x, mask)  # ()
        var = masked_var(x, mask, unbiased=unbiased)  # ()
    else:
        mean, var = mean_var
    whitened = (x - mean) * torch.rsqrt(var + eps)  # (B, T)
    if not shift_mean:
        whitened = whitened + mean
    return _zero_padding(whitened, mask)


# ---------------------------------------------------------------------------------------------------------------
# Log-probabilities, entropy, KL
# ---------------------------------------------------------------------------------------------------------------


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probability of each chosen token: ``log pi(a_t) = z_t[a_t] - logsumexp_v z_t[v]``.

    This is ``log_softmax(logits).gather(tokens)`` without keeping the ``(B, T, V)`` log-softmax: only the gathered
    logit and the ``(B, T)`` log-normaliser are kept. For float16/bfloat16 logits the computation runs in float32
    one row at a time (the precision of a half-precision log-softmax is poor, and a float32 copy of all the logits
    at once would be the largest tensor in the step).

    Args:
        logits: ``(B, T, V)`` unnormalised scores, where ``logits[:, t]`` predicts ``tokens[:, t]`` (the caller
            shifts the model's output by one position). Divide by the sampling temperature first if there is one.
        tokens: ``(B, T)`` int64 token ids; any valid id at padded positions (the caller masks the result).

    Returns:
        ``(B, T)`` log-probabilities, in float32 for half-precision logits and in the logits' dtype otherwise.
    """
    index = tokens.unsqueeze(-1)  # (B, T, 1)
    if logits.dtype in (torch.float16, torch.bfloat16):
        rows = [torch.log_softmax(row.float(), dim=-1).gather(-1, idx).squeeze(-1) for row, idx in zip(logits, index)]
        return torch.stack(rows)  # (B, T)
    chosen = logits.gather(-1, index).squeeze(-1)  # (B, T)
    return chosen - torch.logsumexp(logits, dim=-1)  # (B, T)


CHUNK_ELEMENTS = 1 << 24  # logits elements per float32 chunk (64 MB): bounds the float32 copy of the logits


def _chunks(n: int, width: int, chunk_elements: int):
    step = max(1, chunk_elements // max(width, 1))
    return ((s, min(s + step, n)) for s in range(0, n, step))


class _ChunkedLogprobs(torch.autograd.Function):
    """``log_softmax(logits / T).gather(tokens)`` a chunk of positions at a time, in float32 (or the logits' dtype
    if wider); the backward recomputes each chunk's softmax: ``d/dz = (onehot - softmax(z / T)) * g / T``. Only
    the logits (in their own dtype), the tokens and the (N,) log-normalisers are kept for the backward."""

    @staticmethod
    def forward(ctx, logits, tokens, temperature, chunk_elements):
        V = logits.shape[-1]
        flat, tok = logits.reshape(-1, V), tokens.reshape(-1, 1)  # (N, V), (N, 1)
        dtype = torch.promote_types(logits.dtype, torch.float32)
        out = torch.empty(flat.shape[0], dtype=dtype, device=logits.device)  # (N,)
        lse = torch.empty_like(out)  # (N,)
        for s, e in _chunks(flat.shape[0], V, chunk_elements):
            z = flat[s:e].to(dtype) / temperature  # (n, V)
            lse[s:e] = torch.logsumexp(z, dim=-1)
            out[s:e] = z.gather(-1, tok[s:e]).squeeze(-1) - lse[s:e]
        ctx.save_for_backward(logits, tokens, lse)
        ctx.temperature, ctx.chunk_elements = temperature, chunk_elements
        return out.view(tokens.shape)

    @staticmethod
    def backward(ctx, grad):
        logits, tokens, lse = ctx.saved_tensors
        T = ctx.temperature
        V = logits.shape[-1]
        flat, tok, g = logits.reshape(-1, V), tokens.reshape(-1, 1), grad.reshape(-1, 1).to(lse.dtype)  # (N, 1)
        out = torch.empty_like(flat)  # (N, V) in the logits' dtype
        for s, e in _chunks(flat.shape[0], V, ctx.chunk_elements):
            p = torch.exp(flat[s:e].to(lse.dtype) / T - lse[s:e, None])  # (n, V) softmax(z / T)
            d = (-p * g[s:e]).scatter_add_(-1, tok[s:e], g[s:e])  # (onehot - p) * g
            out[s:e] = d / T
        return out.view_as(logits), None, None, None


def chunked_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0,
                     chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """``logprobs_from_logits(logits.float() / temperature, tokens)`` without a float32 copy of all the logits: the
    log-softmax runs in float32 over chunks of about ``chunk_elements`` logits, forward and backward (the backward
    recomputes each chunk's softmax from the logits in their own dtype, e.g. bfloat16 under autocast).

    Args:
        logits: ``(..., V)`` scores in any float dtype; ``tokens``: ``(...)`` int64 ids.
    Returns:
        ``(...)`` log-probabilities in float32 (float64 for float64 logits), differentiable with respect to
        ``logits``.
    """
    return _ChunkedLogprobs.apply(logits, tokens, float(temperature), int(chunk_elements))


@torch.no_grad()
def chunked_entropy(logits: torch.Tensor, temperature: float = 1.0,
                    chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """``entropy_from_logits(logits.float() / temperature)`` over chunks of positions, without gradient (for the
    logged entropy when it is not part of the loss). ``(..., V)`` -> ``(...)``."""
    V = logits.shape[-1]
    flat = logits.reshape(-1, V)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    out = torch.empty(flat.shape[0], dtype=dtype, device=logits.device)
    for s, e in _chunks(flat.shape[0], V, chunk_elements):
        out[s:e] = entropy_from_logits(flat[s:e].to(dtype) / temperature)
    return out.view(logits.shape[:-1])


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution at each position: ``H = -sum_v p_v log p_v``, ``p = softmax(z)``.

    Tokens masked out with ``-inf`` logits have ``p_v = 0`` and contribute ``0 log 0 = 0``; the value and its
    gradient stay finite (``log p`` is clamped to the dtype's lowest finite value before the product).

    Args:
        logits: ``(B, T, V)``.

    Returns:
        ``(B, T)``.
    """
    logp = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    p = logp.exp()  # (B, T, V)
    return -(p * logp.clamp(min=torch.finfo(logp.dtype).min)).sum(dim=-1)  # (B, T)


def kl_estimate(
    logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k1", mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-token estimate of ``KL(pi || ref)`` from tokens sampled from ``pi`` (Schulman 2020, "Approximating KL
    Divergence").

    With ``log_ratio = log pi(a) - log ref(a)`` and ``r = ref(a) / pi(a) = exp(-log_ratio)``, for ``a ~ pi``:

    - ``k1 = log_ratio``: unbiased, high variance, can be negative for a single sample.
    - ``k2 = 0.5 * log_ratio^2``: biased (low bias when pi and ref are close), always >= 0, low variance.
    - ``k3 = (r - 1) - log r``: unbiased (since ``E_pi[r] = 1``) and always >= 0, low variance.
      Computed as ``expm1(-log_ratio) + log_ratio`` for precision near ``r = 1``.

    These estimate the *value* of the KL; used as a per-token reward penalty (Ziegler et al. 2019) they are
    detached. Their gradient, taken as a loss, is not in general the gradient of the KL.

    Args:
        logp: ``(B, T)`` log-probabilities of the sampled tokens under the policy.
        ref_logp: ``(B, T)`` log-probabilities of the same tokens under the reference model.
        estimator: ``"k1"``, ``"k2"`` or ``"k3"``.
        mask: optional ``(B, T)``; when given, padded positions are 0 in the output.

    Returns:
        ``(B, T)`` per-token estimates.
    """
    if mask is not None:
        logp, ref_logp = _zero_padding(logp, mask), _zero_padding(ref_logp, mask)
    log_ratio = logp - ref_logp  # (B, T)  log pi/ref
    if estimator == "k1":
        kl = log_ratio
    elif estimator == "k2":
        kl = 0.5 * log_ratio.square()
    elif estimator == "k3":
        kl = torch.expm1(-log_ratio) + log_ratio  # (r - 1) - log r, r = ref/pi
    else:
        raise ValueError(f"unknown KL estimator {estimator!r}; choose one of {', '.join(KL_ESTIMATORS)}")
    return kl if mask is None else _zero_padding(kl, mask)


# ---------------------------------------------------------------------------------------------------------------
# Rewards and advantages
# ---------------------------------------------------------------------------------------------------------------


def _last_token(mask: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` bool, true at the last real position of each row (nowhere in a row with no real token)."""
    mask = _as_bool(mask)
    positions = torch.arange(mask.shape[-1], device=mask.device)  # (T,)
    last = torch.where(mask, positions, -1).amax(dim=-1, keepdim=True)  # (B, 1); -1 for an empty row
    return positions == last  # (B, T)


def token_rewards(
    score: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float | torch.Tensor
) -> torch.Tensor:
    """Per-token rewards for RLHF with a KL penalty (Ziegler et al. 2019, eq. 2, spread over tokens).

    ``r_t = -kl_coef * kl_t`` on every real token, plus the sequence-level ``score`` on the last real token of
    each row: the return of a reply is ``score - kl_coef * sum_t kl_t``. Padded positions are 0.

    Args:
        score: ``(B,)`` scalar reward of each reply (the environment's reward).
        kl: ``(B, T)`` per-token KL estimates (``kl_estimate``), detached.
        mask: ``(B, T)`` real response tokens.
        kl_coef: the KL coefficient beta (a float, or a 0-dim tensor).

    Returns:
        ``(B, T)`` rewards.
    """
    rewards = -kl_coef * _zero_padding(kl, mask)  # (B, T)
    is_last = _last_token(mask)  # (B, T)
    score = score.to(rewards.dtype).unsqueeze(-1)  # (B, 1)
    return rewards + torch.where(is_last, score, torch.zeros((), dtype=rewards.dtype, device=rewards.device))


def leave_one_out_baseline(score: torch.Tensor, group_size: int) -> torch.Tensor:
    """Scores minus the mean of the *other* members of their group (RLOO; Kool et al. 2019, Ahmadian et al. 2024).

    ``score`` is ``(B,)`` with ``B = G * group_size`` and the members of group ``g`` at ``g*group_size ...
    (g+1)*group_size - 1`` (several samples of a reply to the same context). For member ``i`` of a group ``s``:
    ``s_i - (sum_j s_j - s_i) / (group_size - 1)``. The baseline does not depend on ``s_i``, so it leaves the
    policy gradient unbiased while removing the between-context variance.
    """
    if group_size < 2 or score.shape[0] % group_size:
        raise ValueError(f"leave_one_out_baseline: batch of {score.shape[0]} is not made of groups of {group_size} "
                         f"(group_size must be >= 2 and divide the batch)")
    groups = score.view(-1, group_size)  # (G, n)
    others = (groups.sum(1, keepdim=True) - groups) / (group_size - 1)  # (G, n)
    return (groups - others).reshape(score.shape)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised Advantage Estimation (Schulman et al. 2016, eqs. 11-16), per reply, over its real tokens.

    For the real tokens ``t_1 < ... < t_n`` of a row, in order (here a contiguous prefix: right padding):

        delta_t = r_t + gamma * V_{next(t)} - V_t
        A_t     = delta_t + gamma * lam * A_{next(t)}
        R_t     = A_t + V_t     (the lambda-return, the value target)

    where ``next(t)`` is the next real token of the same row. After the last real token the episode is over (the
    reply ends it, whether by EOS or by the length limit: the score arrives there), so ``V = 0`` and ``A = 0``
    there: no bootstrapping. Padded positions are skipped, so left padding or holes inside a row give the same
    advantages as the same tokens right-padded; ``advantages`` and ``returns`` are 0 at padded positions.

    Vectorised over ``B``; one reverse pass over ``T``.

    Args:
        rewards: ``(B, T)`` per-token rewards (``token_rewards``).
        values: ``(B, T)`` value estimates ``V(s_t)`` from the rollout.
        mask: ``(B, T)`` real response tokens.
        gamma: discount factor.
        lam: GAE lambda (CleanRL's ``gae_lambda``).

    Returns:
        ``(advantages, returns)``, both ``(B, T)``.
    """
    real = _as_bool(mask)  # (B, T)
    rewards, values = _zero_padding(rewards, real), _zero_padding(values, real)  # (B, T)
    next_value = torch.zeros_like(values[:, 0])  # (B,)  V after the last real token: terminal, 0
    next_adv = torch.zeros_like(values[:, 0])  # (B,)
    advantages = torch.zeros_like(values)  # (B, T)
    for t in reversed(range(values.shape[1])):
        # GAE: delta_t = r_t + gamma V_{t+1} - V_t;  A_t = delta_t + gamma lam A_{t+1}
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        adv = delta + gamma * lam * next_adv  # (B,)
        m = real[:, t]  # (B,)
        advantages[:, t] = torch.where(m, adv, 0.0)
        # a padded position passes the next real token's value and advantage through unchanged
        next_value = torch.where(m, values[:, t], next_value)
        next_adv = torch.where(m, adv, next_adv)
    returns = _zero_padding(advantages + values, real)  # (B, T)
    return advantages, returns


# ---------------------------------------------------------------------------------------------------------------
# Losses and diagnostics
# ---------------------------------------------------------------------------------------------------------------


def policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_coef: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate objective (Schulman et al. 2017, eq. 7), as a loss to minimise.

        ratio_t = exp(log pi(a_t) - log pi_old(a_t))
        loss    = mean_t max(-A_t * ratio_t, -A_t * clip(ratio_t, 1 - eps, 1 + eps))

    averaged over every real token of the batch (``masked_mean``). A token whose ratio is outside
    ``[1 - eps, 1 + eps]`` in the direction its advantage pushes contributes a constant, so no gradient.

    Stats (detached 0-dim tensors, so logging them does not force a device sync per minibatch):

    - ``clipfrac``: fraction of real tokens with ``|ratio - 1| > eps`` (CleanRL's definition).
    - ``approx_kl``: ``mean((ratio - 1) - log ratio)``, the k3 estimate of ``KL(pi_old || pi)`` from tokens
      sampled from ``pi_old`` (CleanRL; Schulman 2020). Used for early stopping with ``target_kl``.
    - ``ratio_mean``: mean ratio (1 on the first minibatch of an update).

    Args:
        logp: ``(B, T)`` log-probabilities of the taken tokens under the current policy (with grad).
        old_logp: ``(B, T)`` the same under the policy that generated the rollout.
        advantages: ``(B, T)``, typically whitened over the batch.
        mask: ``(B, T)`` real response tokens.
        clip_coef: ``eps``.
    """
    logp, old_logp, advantages = (_zero_padding(x, mask) for x in (logp, old_logp, advantages))  # (B, T) each
    log_ratio = logp - old_logp  # (B, T)
    ratio = log_ratio.exp()  # (B, T)
    pg_loss1 = -advantages * ratio  # (B, T)
    pg_loss2 = -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)  # (B, T)
    loss = masked_mean(torch.maximum(pg_loss1, pg_loss2), mask)  # ()
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean(((ratio - 1.0).abs() > clip_coef).to(ratio.dtype), mask),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_coef: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Value-function loss, optionally clipped around the rollout's values (PPO2 / CleanRL ``clip_vloss``).

    Without clipping: ``loss = 0.5 * mean_t (V_t - R_t)^2``. With ``clip_coef = c``:

        V_clip_t = V_old_t + clip(V_t - V_old_t, -c, c)
        loss     = 0.5 * mean_t max((V_t - R_t)^2, (V_clip_t - R_t)^2)

    averaged over every real token of the batch.

    Stats (detached 0-dim tensors): ``vf_clipfrac``, the fraction of real tokens with ``|V_t - V_old_t| > c``
    (0 without clipping).

    Args:
        values: ``(B, T)`` current value predictions (with grad).
        old_values: ``(B, T)`` value predictions from the rollout.
        returns: ``(B, T)`` targets (``gae``'s returns).
        mask: ``(B, T)`` real response tokens.
        clip_coef: ``c``, or ``None`` for no clipping.
    """
    values, old_values, returns = (_zero_padding(x, mask) for x in (values, old_values, returns))  # (B, T) each
    vf_loss = (values - returns).square()  # (B, T)
    if clip_coef is None:
        clipfrac = torch.zeros((), dtype=values.dtype, device=values.device)
    else:
        values_clipped = old_values + (values - old_values).clamp(-clip_coef, clip_coef)  # (B, T)
        vf_loss = torch.maximum(vf_loss, (values_clipped - returns).square())  # (B, T)
        with torch.no_grad():
            clipfrac = masked_mean(((values - old_values).abs() > clip_coef).to(values.dtype), mask)
    loss = 0.5 * masked_mean(vf_loss, mask)  # ()
    return loss, {"vf_clipfrac": clipfrac.detach()}


@torch.no_grad()
def explained_variance(y_pred: torch.Tensor, y_true: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """How much of the variance of the targets the value function explains: ``1 - Var[y - y_pred] / Var[y]``.

    1 is a perfect fit, 0 is no better than predicting the mean, negative is worse. NaN when ``Var[y] = 0``
    (undefined). Over real positions only when ``mask`` is given. Returns a Python float.
    """
    if mask is None:
        mask = torch.ones_like(y_true, dtype=torch.bool)
    var_y = masked_var(y_true, mask, unbiased=False)
    if not var_y > 0:
        return float("nan")
    return float(1.0 - masked_var(y_true - y_pred, mask, unbiased=False) / var_y)


__all__ = [
    "KL_ESTIMATORS",
    "chunked_entropy",
    "chunked_logprobs",
    "entropy_from_logits",
    "explained_variance",
    "gae",
    "kl_estimate",
    "logprobs_from_logits",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "policy_loss",
    "token_rewards",
    "value_loss",
]

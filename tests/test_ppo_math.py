"""Exact tests of the PPO maths (agents/ppo/functional.py, agents/ppo/kl.py) against naive pure-Python loops.

Every batch is float64, right-padded, with random lengths per row that always include a length-1 row and a full
row. The reference implementations below loop over rows and tokens with Python floats and share no code with the
module under test.
"""

import math

import pytest
import torch
from torch.testing import assert_close

from agents.ppo.functional import (
    entropy_from_logits,
    explained_variance,
    gae,
    kl_estimate,
    logprobs_from_logits,
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
    policy_loss,
    token_rewards,
    value_loss,
)
from agents.ppo.kl import AdaptiveKLController, FixedKLController

B, T, V = 6, 9, 7
TIGHT = {"rtol": 1e-12, "atol": 1e-12}
SEEDS = [0, 1, 2]


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: random batches and naive helpers
# ---------------------------------------------------------------------------------------------------------------


def lengths_for(seed):
    """Random lengths in [1, T], always with a length-1 row and a length-T row."""
    g = torch.Generator().manual_seed(1000 + seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g).tolist()
    lengths[0], lengths[-1] = 1, T
    return lengths


def mask_for(lengths):
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T) bool, right padding


def randn(seed, *shape, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


def with_garbage(x, mask, seed=99):
    """``x`` with NaN / inf / huge values at padded positions."""
    g = torch.Generator().manual_seed(seed)
    junk = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -1e30], dtype=x.dtype)
    pick = junk[torch.randint(0, len(junk), x.shape, generator=g)]
    return torch.where(mask, x, pick)


def rows(x, lengths):
    """The real tokens of each row as lists of Python floats."""
    return [[float(x[b, t]) for t in range(lengths[b])] for b in range(len(lengths))]


def to_padded(row_lists, dtype=torch.float64):
    out = torch.zeros(B, T, dtype=dtype)
    for b, r in enumerate(row_lists):
        for t, v in enumerate(r):
            out[b, t] = v
    return out


def naive_mean(values):
    return sum(values) / len(values)


def naive_var(values, unbiased):
    mu = naive_mean(values)
    return sum((v - mu) ** 2 for v in values) / (len(values) - (1 if unbiased else 0))


def scalar(v):
    return torch.tensor(v, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------------------
# Masked statistics
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_masked_sum_and_mean_match_loops(seed):
    lengths = lengths_for(seed)
    mask = mask_for(lengths)
    x = with_garbage(randn(seed, B, T), mask)
    r = rows(x, lengths)
    flat = [v for row in r for v in row]
    assert_close(masked_sum(x, mask), scalar(sum(flat)), **TIGHT)
    assert_close(masked_mean(x, mask), scalar(naive_mean(flat)), **TIGHT)
    assert_close(masked_sum(x, mask, dim=1), torch.tensor([sum(row) for row in r], dtype=torch.float64), **TIGHT)
    assert_close(masked_mean(x, mask, dim=1), torch.tensor([naive_mean(row) for row in r], dtype=torch.float64),
                 **TIGHT)
    # a float 0/1 mask gives the same answers as the bool mask
    assert_close(masked_mean(x, mask.double()), scalar(naive_mean(flat)), **TIGHT)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("unbiased", [True, False])
def test_masked_var_matches_loop(seed, unbiased):
    lengths = lengths_for(seed)
    mask = mask_for(lengths)
    x = with_garbage(randn(seed, B, T, scale=3.0) + 2.0, mask)
    flat = [v for row in rows(x, lengths) for v in row]
    assert_close(masked_var(x, mask, unbiased=unbiased), scalar(naive_var(flat, unbiased)), **TIGHT)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shift_mean", [True, False])
def test_masked_whiten_matches_loop(seed, shift_mean):
    lengths = lengths_for(seed)
    mask = mask_for(lengths)
    eps = 1e-8
    x = with_garbage(randn(seed, B, T, scale=2.0) + 1.5, mask)
    r = rows(x, lengths)
    flat = [v for row in r for v in row]
    mu, var = naive_mean(flat), naive_var(flat, unbiased=True)
    expected = [[(v - mu) / math.sqrt(var + eps) + (0.0 if shift_mean else mu) for v in row] for row in r]
    out = masked_whiten(x, mask, shift_mean=shift_mean, eps=eps)
    assert_close(out, to_padded(expected), **TIGHT)  # padded positions are exactly 0
    real = out[mask]
    if shift_mean:
        assert abs(real.mean().item()) < 1e-12 and abs(real.var().item() - 1.0) < 1e-6


# ---------------------------------------------------------------------------------------------------------------
# Log-probabilities, entropy, KL estimators
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_logprobs_and_entropy_match_loops(seed):
    logits = randn(seed, B, T, V, scale=3.0)
    tokens = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))
    expected_lp, expected_h = torch.zeros(B, T, dtype=torch.float64), torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            z = [float(v) for v in logits[b, t]]
            log_norm = math.log(sum(math.exp(v) for v in z))
            expected_lp[b, t] = z[int(tokens[b, t])] - log_norm
            expected_h[b, t] = -sum(math.exp(v - log_norm) * (v - log_norm) for v in z)
    assert_close(logprobs_from_logits(logits, tokens), expected_lp, **TIGHT)
    assert_close(entropy_from_logits(logits), expected_h, **TIGHT)


def test_logprobs_half_precision_path_is_float32_and_close():
    logits = randn(3, B, T, V, scale=3.0)
    tokens = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(3))
    out = logprobs_from_logits(logits.to(torch.bfloat16), tokens)
    assert out.dtype == torch.float32 and out.shape == (B, T)
    expected = logprobs_from_logits(logits.to(torch.bfloat16).double(), tokens)
    assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_logprobs_gradient_matches_log_softmax():
    logits = randn(4, B, T, V).requires_grad_()
    tokens = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(4))
    weights = randn(5, B, T)
    (grad,) = torch.autograd.grad((logprobs_from_logits(logits, tokens) * weights).sum(), logits)
    ref = logits.detach().clone().requires_grad_()
    (ref_grad,) = torch.autograd.grad(
        (torch.log_softmax(ref, -1).gather(-1, tokens[..., None]).squeeze(-1) * weights).sum(), ref)
    assert_close(grad, ref_grad, **TIGHT)


def test_entropy_with_masked_out_tokens_is_finite():
    logits = randn(6, 2, 3, V).requires_grad_()
    banned = torch.zeros(2, 3, V, dtype=torch.bool)
    banned[..., : V - 2] = True  # only the last two tokens allowed
    masked_logits = logits.masked_fill(banned, -float("inf"))
    h = entropy_from_logits(masked_logits)
    allowed = logits.detach()[..., V - 2:]
    p = torch.softmax(allowed, -1)
    assert_close(h.detach(), -(p * p.log()).sum(-1), **TIGHT)
    h.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[banned] == 0).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_kl_estimators_match_loops(seed):
    lengths = lengths_for(seed)
    mask = mask_for(lengths)
    logp, ref_logp = -randn(seed, B, T).abs() - 0.1, -randn(seed + 50, B, T).abs() - 0.1
    for estimator in ("k1", "k2", "k3"):
        expected = torch.zeros(B, T, dtype=torch.float64)
        for b in range(B):
            for t in range(T):
                lp, rlp = float(logp[b, t]), float(ref_logp[b, t])
                if estimator == "k1":
                    expected[b, t] = lp - rlp
                elif estimator == "k2":
                    expected[b, t] = 0.5 * (lp - rlp) ** 2
                else:
                    r = math.exp(rlp - lp)
                    expected[b, t] = (r - 1) - math.log(r)
        assert_close(kl_estimate(logp, ref_logp, estimator), expected, **TIGHT)
        masked = kl_estimate(with_garbage(logp, mask), with_garbage(ref_logp, mask), estimator, mask=mask)
        assert_close(masked, torch.where(mask, expected, 0.0), **TIGHT)
    assert (kl_estimate(logp, ref_logp, "k3") >= 0).all() and (kl_estimate(logp, ref_logp, "k2") >= 0).all()
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_estimate(logp, ref_logp, "k4")


def test_kl_estimators_converge_to_true_kl():
    """Law of large numbers: the mean of k1 and k3 over samples from pi is KL(pi || ref); k2 is biased."""
    g = torch.Generator().manual_seed(0)
    pi = torch.tensor([0.6, 0.2, 0.1, 0.05, 0.05], dtype=torch.float64)
    ref = torch.tensor([0.2, 0.3, 0.2, 0.15, 0.15], dtype=torch.float64)
    true_kl = float((pi * (pi / ref).log()).sum())  # about 0.399 nats; std of the k1 mean about 0.002
    samples = torch.multinomial(pi, 200_000, replacement=True, generator=g).view(400, 500)  # (B, T)
    logp, ref_logp = pi.log()[samples], ref.log()[samples]
    for estimator in ("k1", "k3"):
        estimate = kl_estimate(logp, ref_logp, estimator).mean().item()
        assert abs(estimate - true_kl) < 0.01, (estimator, estimate, true_kl)
    # the reverse direction KL(ref || pi) is about 0.370: the tolerance tells the two apart
    assert abs(float((ref * (ref / pi).log()).sum()) - true_kl) > 0.02


# ---------------------------------------------------------------------------------------------------------------
# Rewards and GAE
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_token_rewards_match_loop(seed):
    lengths = lengths_for(seed)
    mask = mask_for(lengths)
    score, kl, kl_coef = randn(seed, B), randn(seed + 1, B, T).abs(), 0.05
    expected = []
    for b, row in enumerate(rows(kl, lengths)):
        r = [-kl_coef * k for k in row]
        r[-1] += float(score[b])
        expected.append(r)
    assert_close(token_rewards(score, with_garbage(kl, mask), mask, kl_coef), to_padded(expected), **TIGHT)
    # the return of a reply is score - beta * sum(kl)
    returns = token_rewards(score, kl, mask, kl_coef).sum(1)
    assert_close(returns, score - kl_coef * masked_sum(kl, mask, dim=1), **TIGHT)


def naive_gae(reward_rows, value_rows, gamma, lam):
    adv_rows, ret_rows = [], []
    for rs, vs in zip(reward_rows, value_rows):
        n = len(rs)
        adv = [0.0] * n
        last = 0.0
        for t in reversed(range(n)):
            next_v = vs[t + 1] if t + 1 < n else 0.0  # terminal after the last real token
            delta = rs[t] + gamma * next_v - vs[t]
            last = delta + gamma * lam * last
            adv[t] = last
        adv_rows.append(adv)
        ret_rows.append([a + v for a, v in zip(adv, vs)])
    return adv_rows, ret_rows


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma, lam", [(1.0, 0.95), (0.99, 0.95), (0.9, 0.0), (1.0, 1.0)])
def test_gae_matches_loop(seed, gamma, lam):
    lengths = lengths_for(seed)
    mask = mask_for(lengths)
    rewards, values = randn(seed, B, T), randn(seed + 7, B, T)
    adv_rows, ret_rows = naive_gae(rows(rewards, lengths), rows(values, lengths), gamma, lam)
    advantages, returns = gae(with_garbage(rewards, mask), with_garbage(values, mask, seed=5), mask, gamma, lam)
    assert_close(advantages, to_padded(adv_rows), **TIGHT)
    assert_close(returns, to_padded(ret_rows), **TIGHT)


def test_gae_monte_carlo_special_case():
    """gamma = lam = 1: the return of a token is the plain sum of the rewards from it to the end of its reply."""
    lengths = lengths_for(0)
    mask = mask_for(lengths)
    rewards, values = randn(0, B, T), randn(1, B, T)
    _, returns = gae(rewards, values, mask, 1.0, 1.0)
    expected = [[sum(row[t:]) for t in range(len(row))] for row in rows(rewards, lengths)]
    assert_close(returns, to_padded(expected), **TIGHT)


def test_gae_left_padding_equals_right_padding():
    lengths = lengths_for(1)
    mask = mask_for(lengths)
    rewards, values = randn(2, B, T), randn(3, B, T)
    adv, ret = gae(rewards, values, mask, 0.99, 0.9)

    def left(x):  # shift every row right so that its real tokens end at T - 1 (left padding)
        return torch.stack([torch.roll(x[b], shifts=T - lengths[b], dims=0) for b in range(B)])

    adv_l, ret_l = gae(left(rewards), left(values), left(mask), 0.99, 0.9)
    assert_close(adv_l, left(adv), **TIGHT)
    assert_close(ret_l, left(ret), **TIGHT)


def test_gae_skips_holes_inside_a_row():
    """Padded positions inside a row are skipped: the real tokens, in order, form the episode."""
    mask = torch.rand(B, T, generator=torch.Generator().manual_seed(7)) < 0.6  # (B, T) with holes
    mask[:, 0] = True
    rewards, values = randn(8, B, T), randn(9, B, T)
    adv, ret = gae(with_garbage(rewards, mask), with_garbage(values, mask, seed=1), mask, 0.95, 0.9)
    for b in range(B):
        idx = [t for t in range(T) if mask[b, t]]
        (adv_row,), (ret_row,) = naive_gae([[float(rewards[b, t]) for t in idx]], [[float(values[b, t]) for t in idx]],
                                           0.95, 0.9)
        assert_close(adv[b, idx], torch.tensor(adv_row, dtype=torch.float64), **TIGHT)
        assert_close(ret[b, idx], torch.tensor(ret_row, dtype=torch.float64), **TIGHT)
    assert (adv[~mask] == 0).all() and (ret[~mask] == 0).all()


# ---------------------------------------------------------------------------------------------------------------
# Losses and diagnostics
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_policy_loss_matches_loop(seed):
    lengths = lengths_for(seed)
    mask = mask_for(lengths)
    eps = 0.2
    old_logp = -randn(seed, B, T).abs()
    logp = old_logp + randn(seed + 3, B, T, scale=0.3)  # many ratios outside [0.8, 1.2]
    advantages = randn(seed + 4, B, T)
    terms, clipped, kls, ratios = [], [], [], []
    for lp_row, old_row, a_row in zip(rows(logp, lengths), rows(old_logp, lengths), rows(advantages, lengths)):
        for lp, old, a in zip(lp_row, old_row, a_row):
            ratio = math.exp(lp - old)
            terms.append(max(-a * ratio, -a * min(max(ratio, 1 - eps), 1 + eps)))
            clipped.append(1.0 if abs(ratio - 1) > eps else 0.0)
            kls.append((ratio - 1) - math.log(ratio))
            ratios.append(ratio)
    loss, stats = policy_loss(with_garbage(logp, mask), with_garbage(old_logp, mask, seed=3),
                              with_garbage(advantages, mask, seed=4), mask, eps)
    assert_close(loss, scalar(naive_mean(terms)), **TIGHT)
    assert_close(stats["clipfrac"], scalar(naive_mean(clipped)), **TIGHT)
    assert_close(stats["approx_kl"], scalar(naive_mean(kls)), **TIGHT)
    assert_close(stats["ratio_mean"], scalar(naive_mean(ratios)), **TIGHT)
    assert 0 < stats["clipfrac"] < 1


def test_policy_loss_at_ratio_one_is_the_unclipped_surrogate():
    lengths = lengths_for(2)
    mask = mask_for(lengths)
    old_logp = -randn(0, B, T).abs()
    advantages = randn(1, B, T)
    logp = old_logp.clone().requires_grad_()
    loss, stats = policy_loss(logp, old_logp, advantages, mask, clip_coef=0.2)
    assert_close(loss, -masked_mean(advantages, mask), **TIGHT)  # -mean(A * 1)
    assert stats["clipfrac"] == 0 and stats["approx_kl"] == 0 and stats["ratio_mean"] == 1
    # and the gradient is the policy-gradient one: d/dlogp (-A ratio) / n = -A / n at ratio 1
    (grad,) = torch.autograd.grad(loss, logp)
    assert_close(grad, torch.where(mask, -advantages / mask.sum(), 0.0), **TIGHT)


def test_policy_loss_gradient_is_zero_for_clipped_tokens():
    eps = 0.2
    mask = torch.ones(1, 6, dtype=torch.bool)
    mask[0, 5] = False  # padding
    old_logp = torch.full((1, 6), -1.0, dtype=torch.float64)
    ratios = torch.tensor([[1.5, 0.5, 1.5, 0.5, 1.1, 1.0]], dtype=torch.float64)
    advantages = torch.tensor([[1.0, -1.0, -1.0, 1.0, 1.0, 5.0]], dtype=torch.float64)
    # token 0: A > 0, ratio > 1 + eps -> clipped, no gradient
    # token 1: A < 0, ratio < 1 - eps -> clipped, no gradient
    # token 2: A < 0, ratio > 1 + eps -> not clipped (the pessimistic bound keeps the gradient)
    # token 3: A > 0, ratio < 1 - eps -> not clipped
    # token 4: inside the trust region -> gradient; token 5: padding -> no gradient
    logp = (old_logp + ratios.log()).requires_grad_()
    loss, stats = policy_loss(logp, old_logp, advantages, mask, eps)
    (grad,) = torch.autograd.grad(loss, logp)
    assert grad[0, 0] == 0 and grad[0, 1] == 0 and grad[0, 5] == 0
    assert (grad[0, 2:5] != 0).all()
    assert_close(grad[0, 2:5], -advantages[0, 2:5] * ratios[0, 2:5] / 5, **TIGHT)
    assert_close(stats["clipfrac"], scalar(4 / 5), **TIGHT)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("clip_coef", [None, 0.2])
def test_value_loss_matches_loop(seed, clip_coef):
    lengths = lengths_for(seed)
    mask = mask_for(lengths)
    old_values, returns = randn(seed, B, T), randn(seed + 1, B, T)
    values = old_values + randn(seed + 2, B, T, scale=0.3)
    terms, clipped = [], []
    for v_row, o_row, r_row in zip(rows(values, lengths), rows(old_values, lengths), rows(returns, lengths)):
        for v, o, r in zip(v_row, o_row, r_row):
            if clip_coef is None:
                terms.append((v - r) ** 2)
                clipped.append(0.0)
            else:
                v_clip = min(max(v, o - clip_coef), o + clip_coef)
                terms.append(max((v - r) ** 2, (v_clip - r) ** 2))
                clipped.append(1.0 if abs(v - o) > clip_coef else 0.0)
    loss, stats = value_loss(with_garbage(values, mask), with_garbage(old_values, mask, seed=1),
                             with_garbage(returns, mask, seed=2), mask, clip_coef)
    assert_close(loss, scalar(0.5 * naive_mean(terms)), **TIGHT)
    assert_close(stats["vf_clipfrac"], scalar(naive_mean(clipped)), **TIGHT)
    if clip_coef is not None:
        assert 0 < stats["vf_clipfrac"] < 1


@pytest.mark.parametrize("seed", SEEDS)
def test_explained_variance_matches_loop(seed):
    lengths = lengths_for(seed)
    mask = mask_for(lengths)
    y_true = randn(seed, B, T)
    y_pred = y_true + randn(seed + 1, B, T, scale=0.5)
    ys = [v for row in rows(y_true, lengths) for v in row]
    ps = [v for row in rows(y_pred, lengths) for v in row]
    expected = 1 - naive_var([y - p for y, p in zip(ys, ps)], False) / naive_var(ys, False)
    got = explained_variance(with_garbage(y_pred, mask), with_garbage(y_true, mask, seed=1), mask)
    assert isinstance(got, float) and math.isclose(got, expected, rel_tol=1e-12)
    assert math.isclose(explained_variance(y_true, y_true), 1.0)
    assert math.isnan(explained_variance(y_pred, torch.ones(B, T, dtype=torch.float64)))


# ---------------------------------------------------------------------------------------------------------------
# Padding never matters: garbage in padded positions changes neither values nor gradients
# ---------------------------------------------------------------------------------------------------------------


def test_padding_changes_neither_results_nor_gradients():
    lengths = lengths_for(0)
    mask = mask_for(lengths)
    a, b, c = randn(0, B, T), randn(1, B, T), randn(2, B, T)

    def run(x, y, z):
        x, y, z = (t.clone().requires_grad_() for t in (x, y, z))
        outs = {
            "sum": masked_sum(x, mask),
            "mean_rows": masked_mean(x, mask, dim=1).sum(),
            "var": masked_var(x, mask),
            "whiten": masked_whiten(x, mask).square().sum() + masked_whiten(x, mask, shift_mean=False).sum(),
            "kl": kl_estimate(x, y, "k3", mask=mask).sum(),
            "token_rewards": token_rewards(z[:, 0], x, mask, 0.1).sum(),
            "gae": sum(t.sum() for t in gae(x, y, mask, 0.99, 0.95)),
            "policy": policy_loss(x, y, z, mask, 0.2)[0],
            "value": value_loss(x, y, z, mask, 0.2)[0],
        }
        results = {}
        for name, out in outs.items():
            grads = torch.autograd.grad(out, (x, y, z), allow_unused=True)
            results[name] = (out.detach(), [g if g is not None else torch.zeros_like(x) for g in grads])
        return results

    clean = run(a, b, c)
    dirty = run(with_garbage(a, mask), with_garbage(b, mask, seed=1), with_garbage(c, mask, seed=2))
    for name in clean:
        assert_close(dirty[name][0], clean[name][0], **TIGHT, msg=name)
        for g_clean, g_dirty in zip(clean[name][1], dirty[name][1]):
            assert_close(g_dirty, g_clean, **TIGHT, msg=name)
            assert (g_dirty[~mask] == 0).all(), name


# ---------------------------------------------------------------------------------------------------------------
# KL controllers
# ---------------------------------------------------------------------------------------------------------------


def test_adaptive_kl_controller_follows_the_target():
    ctl = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=10_000)
    ctl.update(current_kl=9.0, n_steps=256)  # KL above target: beta grows
    assert math.isclose(ctl.value, 0.1 * (1 + 0.2 * 256 / 10_000))  # error 0.5 clipped to 0.2
    before = ctl.value
    ctl.update(current_kl=torch.tensor(4.5), n_steps=256)  # below target: beta shrinks, error -0.25 -> -0.2
    assert ctl.value < before
    assert math.isclose(ctl.value, before * (1 - 0.2 * 256 / 10_000))
    before = ctl.value
    ctl.update(current_kl=6.6, n_steps=100)  # small error, not clipped: 0.1
    assert math.isclose(ctl.value, before * (1 + 0.1 * 100 / 10_000))
    before = ctl.value
    ctl.update(current_kl=6.0, n_steps=100)  # on target: unchanged
    assert ctl.value == before
    with pytest.raises(ValueError, match="non-finite"):
        ctl.update(float("nan"), 1)
    with pytest.raises(ValueError, match="target"):
        AdaptiveKLController(0.1, target=0.0, horizon=100)


def test_kl_controllers_state_round_trips():
    ctl = AdaptiveKLController(0.2, target=3.0, horizon=1000)
    for kl in (1.0, 5.0, 7.0):
        ctl.update(kl, 64)
    resumed = AdaptiveKLController(1.0, target=1.0, horizon=1.0)
    resumed.load_state_dict(ctl.state_dict())
    assert resumed.state_dict() == ctl.state_dict() and ctl.value != 0.2
    ctl.update(4.0, 64)
    resumed.update(4.0, 64)
    assert resumed.value == ctl.value

    fixed = FixedKLController(0.05)
    fixed.update(100.0, 64)
    assert fixed.value == 0.05
    other = FixedKLController(1.0)
    other.load_state_dict(fixed.state_dict())
    assert other.value == 0.05
    with pytest.raises(ValueError, match="adaptive"):
        other.load_state_dict(ctl.state_dict())


@pytest.mark.parametrize("n", [2, 3, 4])
def test_leave_one_out_baseline_matches_loop(n):
    from agents.ppo.functional import leave_one_out_baseline

    score = randn(n, 6 * n)
    expected = []
    for i, s in enumerate(score.tolist()):
        group = range((i // n) * n, (i // n + 1) * n)
        others = [score[j].item() for j in group if j != i]
        expected.append(s - sum(others) / len(others))
    assert_close(leave_one_out_baseline(score, n), torch.tensor(expected, dtype=torch.float64), **TIGHT)
    with pytest.raises(ValueError, match="groups of 4"):
        leave_one_out_baseline(torch.zeros(6), 4)

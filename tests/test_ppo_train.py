"""The PPO agent on the tiny model: exact trunk/top split, a real learning signal, checkpoints and resume."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents.ppo.functional as ppo_f
import rewards
from agents.collect import collect
from agents.ppo.checkpoint import read_trainer_state
from agents.ppo.config import PPOConfig
from agents.ppo.policy import PolicyWithValue, position_ids_from_mask
from agents.ppo.trainer import latest_checkpoint, train
from dialogue_env.models import load_policy

ROOT = Path(__file__).resolve().parents[1]


@rewards.register("lowercase_bytes", override=True)
class LowercaseBytes:
    """Fraction of an 8-byte reply that is lowercase ASCII letters: the target tokens of the learning test."""

    name = "lowercase_bytes"

    def __call__(self, contexts, responses):
        return [sum(c.islower() and c.isascii() for c in r) / 8 for r in responses]


def _cfg(**kw):
    base = dict(model="tiny-random", reward="lowercase_bytes", max_new_tokens=8, max_context_tokens=64, num_envs=8,
                num_minibatches=2, update_epochs=2, total_iterations=2, learning_rate=1e-3, temperature=1.0,
                num_layers_unfrozen=1, final_split=None, checkpoint_every=1, logger="none")
    base.update(kw)
    return PPOConfig(**base)


@pytest.mark.parametrize("k", [1, 2, -1])
def test_trunk_plus_top_layers_equal_the_full_forward(k):
    lm, tok = load_policy("tiny-random")
    policy = PolicyWithValue(lm, num_layers_unfrozen=k)
    enc = tok(["Hello there, my bill is wrong", "Hi"], return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        full = lm(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
        h = policy.trunk(ids, mask)
        logits, values = policy.policy_head(h, mask)
        ref = policy.reference_logits(h, mask)
    real = mask.bool()
    torch.testing.assert_close(logits[real], full[real], rtol=0, atol=1e-5)
    torch.testing.assert_close(ref[real], full[real], rtol=0, atol=1e-5)
    assert values.shape == ids.shape
    # keep_from: the last layer computes only the kept positions (its own attention code), same numbers
    with torch.no_grad():
        tail, tail_values = policy.policy_head(h, mask, keep_from=3)
        ref_tail = policy.reference_logits(h, mask, keep_from=3)
    torch.testing.assert_close(tail, logits[:, 3:], rtol=0, atol=1e-5)
    torch.testing.assert_close(ref_tail, ref[:, 3:], rtol=0, atol=1e-5)
    torch.testing.assert_close(tail_values, values[:, 3:], rtol=0, atol=1e-5)


def test_rollout_trunk_states_give_the_sampling_log_probs():
    lm, _ = load_policy("tiny-random")
    policy = PolicyWithValue(lm, num_layers_unfrozen=1)
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        model="tiny-random", reward="length", max_new_tokens=6, max_context_tokens=64)
    venv.reset(seed=0)
    ro = collect(venv, lm, generator=torch.Generator().manual_seed(0), capture_layer=policy.split)
    ids, mask = ro.sequence()
    Lq = ro.query_ids.shape[1]
    assert ro.trunk_states.shape[:2] == ids.shape
    with torch.no_grad():
        full = lm(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits[:, Lq - 1:]
        logits, _ = policy.policy_head(ro.trunk_states, mask, keep_from=Lq - 1)
    m = ro.response_mask.bool()
    a = ppo_f.logprobs_from_logits(full, ro.response_ids)[m]
    b = ppo_f.logprobs_from_logits(logits, ro.response_ids)[m]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    assert len(ro.responses) == 3 and all(isinstance(r, str) for r in ro.responses)


def test_samples_of_one_dialogue_share_one_prefill_with_the_same_result():
    lm, _ = load_policy("tiny-random")
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=6, vectorization_mode="vector_entry_point",
                        model="tiny-random", reward="length", max_new_tokens=6, max_context_tokens=64)
    venv.reset(seed=0)
    calls = []
    lm.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs["input_ids"].shape),
                                 with_kwargs=True)
    idx = [4, 4, 4, 1, 1, 1]
    shared = collect(venv, lm, greedy=True, capture_layer=1, dialogue_indices=idx)
    assert calls[0][0] == 2  # the prefill encoded the two distinct contexts once each
    calls.clear()
    plain = collect(venv, lm, greedy=True, capture_layer=1, dialogue_indices=idx, share_prefill=False)
    assert calls[0][0] == 6
    assert torch.equal(shared.response_ids, plain.response_ids)
    assert torch.equal(shared.query_ids, plain.query_ids)
    torch.testing.assert_close(shared.trunk_states, plain.trunk_states, rtol=0, atol=1e-5)
    assert list(shared.scores) == list(plain.scores)
    assert shared.dialogue_ids[:3] == [shared.dialogue_ids[0]] * 3 and shared.dialogue_ids[0] != shared.dialogue_ids[3]
    # sampled replies of the same context differ (they are independent samples, not copies)
    sampled = collect(venv, lm, temperature=1.0, generator=torch.Generator().manual_seed(0),
                                   dialogue_indices=idx)
    assert len(set(sampled.responses[:3])) > 1


def test_group_samples_with_a_leave_one_out_baseline_train(tmp_path):
    cfg = _cfg(num_envs=8, samples_per_context=4, score_baseline="group", total_iterations=2, checkpoint_every=0)
    result = train(cfg, tmp_path, progress_bar=False, log=lambda *a: None)
    assert result["progress"]["episodes"] == 16
    assert all(np.isfinite(h["losses/pg_loss"]) for h in result["history"])
    with pytest.raises(ValueError, match="samples_per_context"):
        _cfg(num_envs=8, samples_per_context=3).validate()
    with pytest.raises(ValueError, match="score_baseline=group needs"):
        _cfg(score_baseline="group").validate()


def test_two_iterations_train_write_checkpoints_and_change_parameters(tmp_path):
    cfg = _cfg(total_iterations=3, eval_every=1, eval_limit=4, eval_batch_size=4, logger="tensorboard")
    lm0, _ = load_policy("tiny-random")
    result = train(cfg, tmp_path, progress_bar=False, log=lambda *a: None)
    assert len(result["history"]) == 3
    # periodic evaluation on the validation split (not after the last iteration: the final one covers it)
    assert [e["iteration"] for e in result["evals"]] == [1, 2]
    assert all(e["split"] == "validation" and e["n"] == 4 for e in result["evals"])
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    for h in result["history"]:
        for key in ("losses/pg_loss", "losses/v_loss", "losses/entropy", "objective/kl", "rewards/total"):
            assert torch.isfinite(torch.tensor(h[key])), key
        assert "rewards/lowercase_bytes" in h
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt.name == "iter-000003" and (ckpt / "model.safetensors").is_file()
    trained, _ = load_policy(str(ckpt))  # a checkpoint is a valid policy
    top = lm0.config.num_hidden_layers - 1
    p0 = lm0.model.layers[top].mlp.up_proj.weight
    p1 = trained.model.layers[top].mlp.up_proj.weight
    assert not torch.equal(p0, p1)
    torch.testing.assert_close(lm0.model.layers[0].mlp.up_proj.weight, trained.model.layers[0].mlp.up_proj.weight)
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporary or replaced checkpoint left


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    straight = tmp_path / "straight"
    train(_cfg(total_iterations=2), straight, progress_bar=False, log=lambda *a: None)
    split = tmp_path / "split"
    train(_cfg(total_iterations=1), split, progress_bar=False, log=lambda *a: None)
    result = train(_cfg(total_iterations=2), split, resume=True, progress_bar=False, log=lambda *a: None)
    assert result["progress"]["iteration"] == 2 and len(result["history"]) == 1
    a = read_trainer_state(latest_checkpoint(straight))["trainable"]
    b = read_trainer_state(latest_checkpoint(split))["trainable"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "agents.cli", "train", "--config", str(ROOT / "configs" / "tiny.yaml"),
           "--out", str(out), "--no-progress", "--set", "total_iterations=200", "final_split=null",
           "checkpoint_every=1", "logger=none"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def reached() -> int:  # iteration of the newest complete checkpoint (older ones are rotated away)
            ckpt = latest_checkpoint(out) if (out / "checkpoints").is_dir() else None
            return int(ckpt.name.split("-")[1]) if ckpt else 0

        deadline = time.time() + 300
        while time.time() < deadline and reached() < 2 and proc.poll() is None:
            time.sleep(0.2)
        assert reached() >= 2, f"no second checkpoint appeared (trainer exit code {proc.poll()})"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done = latest_checkpoint(out)
    iteration = int(done.name.split("-")[1])
    assert iteration >= 2
    result = train(PPOConfig.from_yaml(ROOT / "configs" / "tiny.yaml", total_iterations=iteration + 1,
                                       final_split=None, logger="none"),
                   out, resume=True, progress_bar=False, log=lambda *a: None)
    assert result["progress"]["iteration"] == iteration + 1 and len(result["history"]) == 1
    assert latest_checkpoint(out).name == f"iter-{iteration + 1:06d}"


def test_autocast_keeps_frozen_weights_in_bf16_trains_the_top_and_saves_float32(tmp_path):
    base, _ = load_policy("tiny-random")
    policy = PolicyWithValue(load_policy("tiny-random")[0], num_layers_unfrozen=1)
    policy.store_frozen_in(torch.bfloat16)
    dtypes = {n: p.dtype for n, p in policy.named_parameters()}
    assert {dtypes[n] for n, p in policy.named_parameters() if p.requires_grad} == {torch.float32}
    assert {dtypes[n] for n, p in policy.named_parameters() if not p.requires_grad} == {torch.bfloat16}
    ids = torch.tensor([[5, 9, 17, 33, 2], [7, 7, 40, 41, 42]])
    mask = torch.ones_like(ids)
    reference = PolicyWithValue(base, num_layers_unfrozen=1)  # float32 throughout
    with torch.no_grad():
        exact, _ = reference.policy_head(reference.trunk(ids, mask), mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, _ = policy.policy_head(policy.trunk(ids, mask), mask)
    assert (low.float().argmax(-1) == exact.argmax(-1)).float().mean() > 0.9
    torch.testing.assert_close(low.float(), exact, rtol=0, atol=0.1)

    result = train(_cfg(total_iterations=1, dtype="autocast"), tmp_path, progress_bar=False, log=lambda *a: None)
    from safetensors.torch import load_file

    saved = load_file(str(Path(result["checkpoint"]) / "model.safetensors"))
    assert {v.dtype for v in saved.values()} == {torch.float32}
    trained, _ = load_policy(result["checkpoint"])
    top = base.config.num_hidden_layers - 1
    assert torch.equal(trained.model.layers[0].self_attn.q_proj.weight,  # frozen: its bfloat16 value
                       base.model.layers[0].self_attn.q_proj.weight.to(torch.bfloat16).float())
    assert not torch.equal(trained.model.layers[top].self_attn.q_proj.weight,
                           base.model.layers[top].self_attn.q_proj.weight)  # trained


def test_under_autocast_each_minibatch_sees_the_weights_of_the_previous_step(tmp_path):
    """Autocast caches its bfloat16 copy of a trained float32 weight until the autocast block ends; an update loop
    inside one block would compute every minibatch with the weights of the rollout (ratio 1, approx_kl 0: PPO's
    clipping blind). Each minibatch runs in a block of its own."""
    history = train(_cfg(total_iterations=1, dtype="autocast", update_epochs=2, learning_rate=1e-2,
                         checkpoint_every=0), tmp_path, progress_bar=False, log=lambda *a: None)["history"]
    assert history[0]["losses/approx_kl"] > 1e-4, history[0]


def _learning_run(tmp_path, monkeypatch=None, broken=False, dtype="auto", **kw):
    if broken:  # a PPO that climbs the wrong way: negated advantages
        real_gae = ppo_f.gae

        def negated(*args, **kwargs):
            adv, ret = real_gae(*args, **kwargs)
            return -adv, ret

        monkeypatch.setattr(ppo_f, "gae", negated)
    cfg = _cfg(num_envs=16, total_iterations=12, update_epochs=4, learning_rate=1e-2, num_layers_unfrozen=-1,
               train_lm_head=True, kl_coef=0.0, checkpoint_every=0, dtype=dtype, **kw)
    history = train(cfg, tmp_path, progress_bar=False, log=lambda *a: None)["history"]
    return [h["rewards/total"] for h in history]


def test_critic_free_returns_give_every_token_its_return_to_go_and_learn(tmp_path, monkeypatch):
    calls = []
    real_gae = ppo_f.gae

    def spy(rewards, values, mask, gamma, lam):
        calls.append((rewards.clone(), values.clone(), mask.clone(), lam))
        return real_gae(rewards, values, mask, gamma, lam)

    monkeypatch.setattr(ppo_f, "gae", spy)
    result = train(_cfg(total_iterations=1, advantage_estimator="returns", samples_per_context=4,
                        score_baseline="group", kl_coef=0.1), tmp_path, progress_bar=False, log=lambda *a: None)
    (rewards, values, mask, lam), = calls
    assert lam == 1.0 and not values.any()  # no critic: V = 0, lambda = 1
    adv, _ = real_gae(rewards, values, mask, 1.0, lam)
    for b in range(rewards.shape[0]):  # A_t = sum_{k >= t} r_k over the reply's tokens: the first gets it all
        n = int(mask[b].sum())
        expected = torch.flip(torch.cumsum(torch.flip(rewards[b, :n], [0]), 0), [0])
        torch.testing.assert_close(adv[b, :n], expected)
    state = read_trainer_state(result["checkpoint"])["trainable"]
    assert state and not any(k.startswith("value_head") for k in state)  # the value head is not trained
    assert "losses/explained_variance" not in result["history"][0]
    with pytest.raises(ValueError, match="advantage_estimator='vtrace': use gae or returns"):
        _cfg(advantage_estimator="vtrace").validate()


def test_ppo_without_a_critic_learns_to_emit_the_rewarded_tokens(tmp_path):
    curve = _learning_run(tmp_path, advantage_estimator="returns")
    assert curve[0] < 0.25
    assert sum(curve[-3:]) / 3 > 0.6, curve


@pytest.mark.parametrize("dtype", ["auto", "autocast"])
def test_ppo_learns_to_emit_the_rewarded_tokens(tmp_path, dtype):
    curve = _learning_run(tmp_path, dtype=dtype)
    assert curve[0] < 0.25  # random tokens: ~26 of 259 are lowercase letters
    assert sum(curve[-3:]) / 3 > 0.6, curve


def test_the_learning_test_fails_for_a_broken_ppo(tmp_path, monkeypatch):
    curve = _learning_run(tmp_path, monkeypatch, broken=True)
    assert sum(curve[-3:]) / 3 < 0.25, curve


def test_lora_trains_only_adapters_and_saves_a_merged_policy(tmp_path):
    result = train(_cfg(total_iterations=1, lora_r=4, num_layers_unfrozen=1, learning_rate=1e-2), tmp_path,
                   progress_bar=False, log=lambda *a: None)
    state = read_trainer_state(result["checkpoint"])["trainable"]
    assert state and all("lora_" in k or k.startswith("value_head") for k in state)
    base, _ = load_policy("tiny-random")
    merged, _ = load_policy(result["checkpoint"])
    top = base.config.num_hidden_layers - 1
    assert not torch.equal(base.model.layers[top].self_attn.q_proj.weight,
                           merged.model.layers[top].self_attn.q_proj.weight)
    torch.testing.assert_close(base.model.layers[0].self_attn.q_proj.weight,
                               merged.model.layers[0].self_attn.q_proj.weight)


def test_length_grouped_sampler_covers_every_dialogue_once_per_pass():
    from agents.ppo.trainer import LengthGroupedSampler

    lengths = list(range(100, 0, -1))
    sampler = LengthGroupedSampler(lengths, batch=8, seed=0)
    batches = [sampler.next() for _ in range(12)]  # 96 of 100 per pass (the remainder waits for the next pass)
    seen = [i for b in batches for i in b]
    assert len(seen) == len(set(seen)) == 96
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert max(spread) < 40  # batches hold similar lengths (a random batch of 8 would span ~75)
    clone = LengthGroupedSampler(lengths, batch=8, seed=1)
    clone.load_state_dict(sampler.state_dict())
    assert [clone.next() for _ in range(5)] == [sampler.next() for _ in range(5)]


def test_config_overrides_accept_numbers_yaml_reads_as_strings():
    from agents.ppo.config import parse_overrides

    # YAML 1.1 reads "1e-4" (no dot) as a string; the config turns it into the float the user meant
    cfg = PPOConfig.from_dict(parse_overrides(["learning_rate=1e-4", "target_kl=5e-2", "time_limit_s=null",
                                               "num_envs=8"]))
    assert cfg.learning_rate == 1e-4 and cfg.target_kl == 0.05 and cfg.time_limit_s is None and cfg.num_envs == 8
    with pytest.raises(ValueError, match="learning_rate='fast' is not a number"):
        PPOConfig.from_dict({"learning_rate": "fast"})

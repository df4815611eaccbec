"""The PPO pieces made for speed: the chunked log-softmax gather (never a float32 copy of all the logits) against
the plain one, forward and backward; the sampling generator across devices in checkpoints; the per-phase times."""

import numpy as np
import pytest
import torch

from agents.ppo import functional as F
from agents.ppo.trainer import phase_times

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="needs CUDA")])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chunk", [7, 64, 1 << 24])  # several chunks per row, a few rows per chunk, one chunk
def test_chunked_logprobs_equal_the_plain_gather_with_gradients(device, chunk):
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(3, 5, 11, generator=g, dtype=torch.float64)).to(device).requires_grad_()
    tokens = torch.randint(0, 11, (3, 5), generator=g).to(device)
    weights = torch.randn(3, 5, generator=g, dtype=torch.float64).to(device)
    plain = F.logprobs_from_logits(logits / 0.7, tokens)
    (grad_plain,) = torch.autograd.grad((plain * weights).sum(), logits)
    chunked = F.chunked_logprobs(logits, tokens, 0.7, chunk_elements=chunk)
    (grad_chunked,) = torch.autograd.grad((chunked * weights).sum(), logits)
    torch.testing.assert_close(chunked, plain)
    torch.testing.assert_close(grad_chunked, grad_plain)
    assert torch.autograd.gradcheck(lambda x: F.chunked_logprobs(x, tokens, 0.7, chunk), (logits,))


@pytest.mark.parametrize("device", DEVICES)
def test_chunked_logprobs_of_bfloat16_logits_are_float32_and_match_a_float32_computation(device):
    g = torch.Generator().manual_seed(1)
    logits32 = (4 * torch.randn(4, 6, 300, generator=g)).to(device)
    logits = logits32.bfloat16().requires_grad_()
    tokens = torch.randint(0, 300, (4, 6), generator=g).to(device)
    out = F.chunked_logprobs(logits, tokens, 0.7, chunk_elements=600)
    assert out.dtype == torch.float32
    ref_in = logits.detach().float().requires_grad_()
    ref = F.logprobs_from_logits(ref_in / 0.7, tokens)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    ref.sum().backward()
    assert logits.grad.dtype == torch.bfloat16
    torch.testing.assert_close(logits.grad.float(), ref_in.grad, atol=1e-2, rtol=1e-2)


def test_chunked_entropy_equals_the_plain_entropy():
    logits = torch.randn(3, 4, 9, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(F.chunked_entropy(logits, 0.5, chunk_elements=10),
                               F.entropy_from_logits(logits / 0.5))


def test_a_sampling_generator_state_from_another_device_type_reseeds_it_deterministically():
    from agents.ppo.checkpoint import restore_state

    class Stub:
        def __init__(self):
            self.loaded = None

        def load_state_dict(self, state, strict=True):
            self.loaded = state
            return type("R", (), {"unexpected_keys": []})()

    cuda_state = torch.arange(16, dtype=torch.uint8)  # a CUDA generator's state: seed and offset
    state = {"trainable": {}, "optimizer": {}, "kl_ctl": {}, "torch_rng": torch.get_rng_state(),
             "numpy_rng": np.random.get_state(), "python_rng": __import__("random").getstate(),
             "sampler_rng": cuda_state, "sampler": {}, "progress": {"iteration": 3}}
    draws = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(99)
        assert restore_state(state, Stub(), Stub(), Stub(), gen, Stub(), "x") == {"iteration": 3}
        draws.append(torch.randint(0, 1000, (5,), generator=gen))
    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], torch.randint(0, 1000, (5,), generator=torch.Generator().manual_seed(99)))


def test_phase_times_split_an_iteration():
    clock = {"start": 10.0, "rollout": 14.0, "score": 15.0, "advantages": 15.5, "update": 18.0}
    t = phase_times(clock, reward_seconds=1.0)
    assert t["time/generate"] == 3.0 and t["time/reward"] == 1.0 and t["time/score"] == 1.0
    assert t["time/update"] == 2.5 and t["time/other"] >= 0.5


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_tiny_ppo_trains_evaluates_checkpoints_and_resumes_on_cuda(tmp_path):
    """The whole CUDA path on the tiny model: static decode + graph under bf16 autocast, device sampling, chunked
    log-probs, fused AdamW, phase times, the device generator in the checkpoint, resume."""
    from agents.ppo.checkpoint import read_trainer_state
    from agents.ppo.config import PPOConfig
    from agents.ppo.trainer import train
    from agents.presets import resolve_config

    tiny = resolve_config("tiny")
    cfg = PPOConfig.from_yaml(tiny, device="cuda", logger="none", num_layers_unfrozen=-1,
                              total_iterations=2)
    result = train(cfg, tmp_path, progress_bar=False, log=lambda *a: None)
    assert result["progress"]["iteration"] == 2 and result["summaries"]["after"]["n"] > 0
    for h in result["history"]:
        assert {"time/generate", "time/reward", "time/score", "time/update", "time/other"} <= set(h)
        assert np.isfinite(h["losses/pg_loss"]) and h["charts/mean_reply_tokens"] > 0
    state = read_trainer_state(tmp_path / "checkpoints" / "iter-000002")
    assert state["sampler_rng"].numel() != torch.Generator().get_state().numel()  # a CUDA generator's state
    again = train(PPOConfig.from_yaml(tiny, device="cuda", logger="none", num_layers_unfrozen=-1,
                                      total_iterations=3), tmp_path, resume=True, progress_bar=False,
                  log=lambda *a: None)
    assert again["progress"]["iteration"] == 3 and len(again["history"]) == 1

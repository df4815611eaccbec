"""The fast decode path of the collector (static key/value buffers, CUDA graph on CUDA, eager here) and sampling on
the device: the same tokens as Hugging Face ``generate`` greedily, the same log-probs as a plain forward, the right
sampling distribution, and reproducibility under a seed. The ``gpu``-marked twins run the same checks under CUDA
(scripts/bench_gpu.sh)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_kvcache import _left_pad  # the same left-padded batches as the dynamic cache's tests

import dialogue_env  # noqa: F401
from agents.collect import LMActor, collect, device_generator, sample_tokens
from dialogue_env.kvcache import CachedDecoder, StaticDecoder, static_decode_supported
from dialogue_env.models import load_policy, tiny_model

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="needs CUDA")])]


def _model(device, attn="sdpa"):
    lm = tiny_model(259, seed=3).eval().to(device)
    lm.config._attn_implementation = attn
    return lm


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_static_decode_gives_generates_greedy_tokens(device, attn):
    lm = _model(device, attn)
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(3, 259, (n,), generator=g).tolist() for n in (5, 11, 3, 8)]
    ids, mask = _left_pad(seqs)
    ids, mask = ids.to(device), mask.to(device)
    new = 12
    with torch.no_grad():
        gen = lm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                          pad_token_id=2, eos_token_id=None, output_logits=True, return_dict_in_generate=True)
    ref = gen.sequences[:, ids.shape[1]:]
    dec = StaticDecoder(lm, 4, new, graph=device == "cuda")
    logits, _ = dec.prefill(np.arange(4), ids, mask)
    out = []
    for _ in range(new):
        tok = logits.argmax(-1)
        out.append(tok)
        logits, _ = dec.advance(tok, torch.ones(4, dtype=torch.bool))
    out = torch.stack(out, 1)
    if device == "cpu":
        assert torch.equal(out, ref)
    else:  # CUDA attention kernels differ in the last bits: a row may only part where generate's top two tie
        for b in range(4):
            differ = torch.nonzero(out[b] != ref[b]).flatten()
            if differ.numel():
                top2 = gen.logits[int(differ[0])][b].float().topk(2).values
                assert float(top2[0] - top2[1]) < 1e-3, (b, out[b].tolist(), ref[b].tolist())


@pytest.mark.parametrize("device", DEVICES)
def test_static_decode_logprobs_equal_a_plain_forward_with_paused_rows(device):
    """Rows that stop (an ended reply) get masked columns; the others' log-probs equal one full uncached forward,
    and the captured hidden states equal the plain forward's."""
    lm = _model(device)
    g = torch.Generator().manual_seed(2)
    seqs = [torch.randint(3, 259, (n,), generator=g).tolist() for n in (6, 2, 9)]
    dec = StaticDecoder(lm, 3, 8, hidden_layer=1, graph=device == "cuda")
    ids, mask = _left_pad(seqs)
    logits, hidden = dec.prefill([0, 1, 2], ids.to(device), mask.to(device))
    for step in range(7):
        active = torch.tensor([True, step % 3 != 1, step < 4])
        tokens = torch.randint(3, 259, (3,), generator=g)
        logits, hidden = dec.advance(tokens.to(device), active.to(device))
        for i in range(3):
            if not active[i]:
                continue
            seqs[i].append(int(tokens[i]))
            with torch.no_grad():
                full = lm(input_ids=torch.tensor([seqs[i]], device=device), output_hidden_states=True)
            torch.testing.assert_close(torch.log_softmax(logits[i].float(), -1),
                                       torch.log_softmax(full.logits[0, -1].float(), -1), atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(hidden[i, -1], full.hidden_states[1][0, -1], atol=1e-4, rtol=1e-4)


def test_static_decoder_refuses_what_it_cannot_do():
    lm = _model("cpu")
    dec = StaticDecoder(lm, 2, 4)
    with pytest.raises(RuntimeError, match="prefill before advance"):
        dec.advance(torch.tensor([5, 6]), torch.ones(2, dtype=torch.bool))
    with pytest.raises(NotImplementedError, match="every row"):
        dec.prefill([1], *_left_pad([[5, 6]]))
    lm.config._attn_implementation = "flash_attention_2"
    assert not static_decode_supported(lm)
    with pytest.raises(NotImplementedError, match="CachedDecoder"):
        StaticDecoder(lm, 2, 4)


ENV = {"model": "tiny-random", "reward": "length", "max_context_tokens": 256, "max_new_tokens": 9,
       "return_tensors": True}


def _venv(n, device="cpu"):
    return gym.make_vec("dialogue_env/Dialogue-v0", num_envs=n, vectorization_mode="vector_entry_point",
                        device=device, **ENV)


@pytest.mark.parametrize("device", DEVICES)
def test_collect_static_and_dynamic_decoders_write_the_same_rollout(device):
    lm = load_policy("tiny-random", device=device)[0]
    venv = _venv(5, device)
    indices = [0, 3, 3, 8, 1]  # a repeated context: the shared prefill feeds the static buffers too
    a = collect(venv, lm, greedy=True, dialogue_indices=indices, decode="dynamic", capture_layer=1)
    b = collect(venv, lm, greedy=True, dialogue_indices=indices, decode="static", capture_layer=1)
    assert a.stats["reward_seconds"] > 0
    if device != "cpu":  # CUDA kernels differ in the last bits; a near-tie may part a row (exact: the logprob test)
        assert float((a.response_ids == b.response_ids).all(1).float().mean()) >= 0.8
        return
    assert torch.equal(a.response_ids, b.response_ids) and torch.equal(a.response_mask, b.response_mask)
    assert a.responses == b.responses and np.array_equal(a.scores, b.scores)
    torch.testing.assert_close(a.trunk_states, b.trunk_states, atol=1e-5, rtol=1e-5)


def test_static_decoders_are_kept_per_model_and_shape_and_reused_across_rollouts():
    from dialogue_env.kvcache import STATIC_DECODERS_PER_MODEL, static_decoder

    lm = _model("cpu")
    first = static_decoder(lm, 3, 8)
    assert static_decoder(lm, 3, 8) is first and static_decoder(lm, 3, 8, hidden_layer=1) is not first
    assert static_decoder(lm, 3, 8) is first  # most recently used: kept
    for n in range(4, 4 + STATIC_DECODERS_PER_MODEL):
        static_decoder(lm, n, 8)
    assert static_decoder(lm, 3, 8) is not first  # evicted
    assert static_decoder(_model("cpu"), 3, 8) is not static_decoder(lm, 3, 8)  # another model object
    # a reused decoder decodes a second, shorter batch exactly (stale columns of the first are masked)
    dec = static_decoder(lm, 2, 6)
    g = torch.Generator().manual_seed(4)
    for lengths in ((9, 4), (3, 2)):
        seqs = [torch.randint(3, 259, (n,), generator=g).tolist() for n in lengths]
        logits, _ = dec.prefill([0, 1], *_left_pad(seqs))
        for _ in range(5):
            tok = logits.argmax(-1)
            for i in range(2):
                seqs[i].append(int(tok[i]))
            logits, _ = dec.advance(tok, torch.ones(2, dtype=torch.bool))
        for i in range(2):
            with torch.no_grad():
                full = lm(input_ids=torch.tensor([seqs[i]])).logits[0, -1]
            torch.testing.assert_close(logits[i], full, atol=1e-4, rtol=1e-4)


def test_auto_decode_is_the_dynamic_cache_on_the_cpu_and_static_is_refused_for_multi_turn():
    lm = load_policy("tiny-random")[0]
    assert LMActor(lm, 2, max_new_tokens=4, decode="auto").decode == "dynamic"
    assert LMActor(lm, 2, max_new_tokens=4, decode="static").decode == "static"
    with pytest.raises(ValueError, match="decode='x'"):
        LMActor(lm, 2, decode="x")
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=2, vectorization_mode="vector_entry_point", turns=2,
                        device="cpu", **ENV)
    with pytest.raises(ValueError, match="turns=1"):
        collect(venv, lm, greedy=True, decode="static")


# --------------------------------------------------------------------------------------------------- sampling
def _chi_square_pvalue(counts, probs):
    from scipy.stats import chisquare

    expected = probs / probs.sum() * counts.sum()
    return chisquare(counts, expected).pvalue


@pytest.mark.parametrize("device", DEVICES)
def test_device_sampling_has_the_softmax_distribution(device):
    """200k draws over a 6-token vocabulary at temperature 0.7 (one token has probability 0 through -inf): the
    counts fit softmax(logits / T) (chi-square), and the impossible token never comes."""
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -float("inf")], device=device)
    probs = torch.softmax(logits / 0.7, -1).cpu().double().numpy()
    gen = torch.Generator(device=device).manual_seed(0)
    draws = torch.cat([sample_tokens(logits.expand(20_000, -1), 0.7, gen) for _ in range(10)]).cpu()
    counts = np.bincount(draws.numpy(), minlength=6)
    assert counts[5] == 0
    assert _chi_square_pvalue(counts[:5], probs[:5]) > 1e-3  # fails for a wrong distribution (see the next test)
    wrong = torch.softmax(logits / 1.0, -1).cpu().double().numpy()  # the temperature ignored
    assert _chi_square_pvalue(counts[:5], wrong[:5]) < 1e-6


@pytest.mark.parametrize("device", DEVICES)
def test_device_sampling_is_reproducible_under_a_seed_and_resumes_from_a_saved_state(device):
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(0)).to(device)
    gen = torch.Generator(device=device).manual_seed(7)
    first = sample_tokens(logits, 1.0, gen)
    state = gen.get_state()  # what a checkpoint saves
    second = sample_tokens(logits, 1.0, gen)
    again = torch.Generator(device=device).manual_seed(7)
    assert torch.equal(sample_tokens(logits, 1.0, again), first)
    resumed = torch.Generator(device=device)
    resumed.set_state(state)
    assert torch.equal(sample_tokens(logits, 1.0, resumed), second)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("device", DEVICES)
def test_a_cpu_generator_drives_a_device_generator_reproducibly(device):
    if device == "cuda":
        a = device_generator(torch.Generator().manual_seed(3), torch.device(device))
        b = device_generator(torch.Generator().manual_seed(3), torch.device(device))
        assert a.device.type == "cuda" and a.initial_seed() == b.initial_seed()
    cpu = torch.Generator().manual_seed(3)
    assert device_generator(cpu, torch.device("cpu")) is cpu
    assert device_generator(None, torch.device("cpu")) is None


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_rollouts_are_reproducible_under_a_seed_with_graphs_and_autocast():
    lm = load_policy("tiny-random", device="cuda")[0]
    venv = _venv(6, "cuda")
    runs = []
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            ro = collect(venv, lm, temperature=0.8, generator=torch.Generator().manual_seed(5),
                         dialogue_indices=[0, 1, 2, 3, 4, 5], capture_layer=0)
        runs.append(ro)
    assert torch.equal(runs[0].response_ids, runs[1].response_ids)
    assert runs[0].responses == runs[1].responses


def test_cached_decoder_is_still_what_multi_turn_uses():
    lm = load_policy("tiny-random")[0]
    assert isinstance(LMActor(lm, 2, decode="dynamic").decoder, CachedDecoder)

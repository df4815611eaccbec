"""PPOConfig.validate rejects nonsensical values (naming the field and what it takes); every shipped preset passes;
configuration mistakes are ConfigError (a ValueError the command line prints without a traceback)."""

from pathlib import Path

import pytest

from agents.ppo.config import PPOConfig, parse_overrides
from rewards.utils import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("field, value, message", [
    ("total_iterations", -1, r"total_iterations=-1 must be an integer >= 1"),
    ("total_iterations", 0, r"total_iterations=0 must be an integer >= 1"),
    ("max_new_tokens", 2.5, r"max_new_tokens=2\.5 must be an integer"),
    ("max_new_tokens", 0, r"max_new_tokens=0 must be an integer >= 1"),
    ("max_context_tokens", 4, r"max_context_tokens=4 must be an integer >= 8"),
    ("update_epochs", 0, r"update_epochs=0"),
    ("eval_batch_size", 0, r"eval_batch_size=0"),
    ("eval_every", -2, r"eval_every=-2"),
    ("checkpoint_every", -1, r"checkpoint_every=-1"),
    ("eval_limit", 0, r"eval_limit=0 must be an integer >= 1, or null"),
    ("num_layers_unfrozen", -3, r"num_layers_unfrozen=-3 must be -1 \(all layers\) or >= 0"),
    ("learning_rate", 0.0, r"learning_rate=0\.0 must be a number > 0"),
    ("learning_rate", -1e-5, r"learning_rate=-1e-05 must be a number > 0"),
    ("clip_coef", 0, r"clip_coef=0 must be a number > 0"),
    ("max_grad_norm", float("nan"), r"max_grad_norm=nan must be a number > 0"),
    ("kl_coef", -0.1, r"kl_coef=-0\.1 must be a number >= 0"),
    ("ent_coef", -1, r"ent_coef=-1 must be a number >= 0"),
    ("gamma", 1.5, r"gamma=1\.5 must be in \[0, 1\]"),
    ("gae_lambda", -0.1, r"gae_lambda=-0\.1 must be in \[0, 1\]"),
    ("target_kl", 0, r"target_kl=0 must be a number > 0, or null"),
    ("time_limit_s", -5, r"time_limit_s=-5 must be a number > 0"),
    ("dtype", "float8", r"dtype='float8': use auto, autocast, float32 or bfloat16"),
    ("eval_split", "dev", r"eval_split='dev': use train, validation or test"),
    ("final_split", "dev", r"final_split='dev'"),
])
def test_nonsensical_values_are_rejected_naming_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        PPOConfig.from_dict({field: value})
    with pytest.raises(ValueError, match=message):
        PPOConfig(**{field: value}).validate()


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_still_validates(preset):
    from agents.compare import CompareConfig

    (CompareConfig if preset.startswith("compare") else PPOConfig).from_yaml(ROOT / "configs" / preset)


@pytest.mark.parametrize("other, named", [({"lora_r": 4}, "lora_r > 0"), ({"fsdp": True}, "fsdp: true")])
def test_autocast_refuses_what_it_does_not_support(other, named):
    with pytest.raises(ConfigError, match=f"dtype=autocast with {named} is not supported .*; use dtype auto"):
        PPOConfig.from_dict({"dtype": "autocast", **other})


def test_sensible_edge_values_pass():
    PPOConfig.from_dict({"final_split": None, "checkpoint_every": 0, "num_layers_unfrozen": -1, "gamma": 1.0,
                         "eval_limit": None, "target_kl": None, "kl_coef": 0.0, "max_new_tokens": 3.0})


def test_no_final_split_is_empty_or_null():
    assert PPOConfig.from_dict({"final_split": ""}).final_split == ""


def test_an_integral_float_for_an_int_field_becomes_an_int():
    assert PPOConfig.from_dict({"max_new_tokens": 16.0}).max_new_tokens == 16


def test_bad_overrides_and_yaml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"override 'lr' must look like field=value"):
        parse_overrides(["lr"])
    with pytest.raises(ConfigError, match=r"unknown PPO config field\(s\) \['lr'\]"):
        PPOConfig.from_dict(parse_overrides(["lr=1"]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny-random\n  num_envs: [8\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML .*line \d+"):
        PPOConfig.from_yaml(bad)
    with pytest.raises(FileNotFoundError, match=r"config file .*nope\.yaml does not exist") as info:
        PPOConfig.from_yaml(tmp_path / "nope.yaml")
    assert isinstance(info.value, ConfigError)

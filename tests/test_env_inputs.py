"""Wrong inputs to the environments are clear errors that name the input and the fix: actions of the wrong type,
reset options of the wrong type or unknown keys, non-integer int arguments, a context too short for the chat
template's generation prompt."""

import gymnasium as gym
import numpy as np
import pytest

from dialogue_env.data import Dialogue
from rewards.utils import ConfigError

TINY = dict(model="tiny-random", reward="length", max_context_tokens=64, max_new_tokens=4)
DIALOGUES = [Dialogue(id=f"d{i}", turns=({"role": "user", "content": f"question {i}"},)) for i in range(3)]


@pytest.fixture(scope="module")
def env():
    env = gym.make("dialogue_env/Dialogue-v0", dataset=DIALOGUES, **TINY).unwrapped
    env.reset(seed=0)
    return env


@pytest.fixture(scope="module")
def venv():
    return gym.make_vec("dialogue_env/Dialogue-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        dataset=DIALOGUES, **TINY)


@pytest.mark.parametrize("action, error, message", [
    ("5", TypeError, r"got '5' \(str\).*Pass ints, e\.g\. env\.action_space\.sample\(\)"),
    (None, TypeError, r"got None \(NoneType\)"),
    (2.5, ValueError, r"actions must be integers \(token ids in \[0, 258\].*Discrete\(259\).*got \[2\.5\]"),
    (float("nan"), ValueError, r"actions must be integers"),
])
def test_action_of_the_wrong_type_names_it(env, action, error, message):
    with pytest.raises(error, match=message):
        env.step(action)


def test_vector_actions_of_the_wrong_type_name_the_culprit(venv):
    venv.reset(seed=0)
    with pytest.raises(TypeError, match=r"got '7' \(str\) in \[5, '7'\]"):
        venv.step([5, "7"])
    obs, *_ = venv.step(np.array([5, 7]))  # integers still work, floats that are integers too
    venv.step(np.array([5.0, 7.0]))


def test_topk_actions_of_the_wrong_type_name_the_top_k():
    env = gym.make("dialogue_env/DialogueTopK-v0", dataset=DIALOGUES, k=4, **TINY).unwrapped
    env.reset(seed=0)
    with pytest.raises(TypeError, match=r"indices into the top-k, in \[0, 3\] \(Discrete\(4\)\).*got '1'"):
        env.step("1")
    with pytest.raises(ValueError, match=r"indices into the top-k.*got \[2\.5\]"):
        env.step(2.5)


@pytest.mark.parametrize("options, error, message", [
    ({"dialogue_idx": 1}, ValueError, r"unknown reset option\(s\) \['dialogue_idx'\]; this env understands "
                                      r"dialogue_index, dialogue_id"),
    ({"dialogue_index": "1"}, TypeError, r"options\['dialogue_index'\]='1' must be an int"),
    ({"dialogue_index": 1.0}, TypeError, r"must be an int .*got float"),
    ({"dialogue_index": True}, TypeError, r"must be an int"),
    ({"dialogue_id": 3}, TypeError, r"options\['dialogue_id'\]=3 must be a str"),
    ({"dialogue_index": 0, "dialogue_id": "d0"}, ValueError, r"give only one of them"),
    ({"reset_mask": [True]}, ValueError, r"unknown reset option\(s\) \['reset_mask'\]"),
    ([("dialogue_index", 0)], TypeError, r"options=\.\.\.\) must be a dict"),
])
def test_single_env_reset_options_are_checked(env, options, error, message):
    with pytest.raises(error, match=message):
        env.reset(options=options)


def test_single_env_reset_options_that_are_right_still_work(env):
    assert env.reset(options={"dialogue_index": np.int64(2)})[1]["dialogue_id"] == "d2"
    assert env.reset(options={"dialogue_id": "d1"})[1]["dialogue_id"] == "d1"


@pytest.mark.parametrize("options, error, message", [
    ({"reset_masks": [True, True]}, ValueError, r"unknown reset option\(s\) \['reset_masks'\]; this env understands "
                                                r"reset_mask, dialogue_indices, dialogue_index, dialogue_id"),
    ({"reset_mask": [0, 2]}, TypeError, r"options\['reset_mask'\] must be 2 booleans"),
    ({"reset_mask": ["yes", "no"]}, TypeError, r"must be 2 booleans"),
    ({"dialogue_indices": [0.5, 1]}, TypeError, r"options\['dialogue_indices'\] must be 2 ints"),
    ({"dialogue_indices": ["0", "1"]}, TypeError, r"must be 2 ints"),
    ({"dialogue_indices": [0, 1], "dialogue_index": 0}, ValueError, r"give only one of them"),
    ({"dialogue_id": 0}, TypeError, r"must be a str"),
])
def test_vector_env_reset_options_are_checked(venv, options, error, message):
    with pytest.raises(error, match=message):
        venv.reset(options=options)


def test_vector_env_reset_options_that_are_right_still_work(venv):
    _, infos = venv.reset(options={"dialogue_indices": [2, 0], "reset_mask": np.array([1, 1])})
    assert list(infos["dialogue_id"]) == ["d2", "d0"]
    _, infos = venv.reset(options={"dialogue_id": "d1"})
    assert list(infos["dialogue_id"]) == ["d1", "d1"]


@pytest.mark.parametrize("kwargs, message", [
    ({"max_new_tokens": 2.5}, r"max_new_tokens=2\.5 must be an integer, got float; pass e\.g\. max_new_tokens=2"),
    ({"max_context_tokens": 64.5}, r"max_context_tokens=64\.5 must be an integer"),
    ({"turns": "2"}, r"turns='2' must be an integer, got str"),
    ({"max_new_tokens": True}, r"max_new_tokens=True must be an integer"),
])
def test_non_integer_int_arguments_are_type_errors(kwargs, message):
    with pytest.raises(TypeError, match=message) as info:
        gym.make("dialogue_env/Dialogue-v0", dataset=DIALOGUES, **{**TINY, **kwargs})
    assert isinstance(info.value, ConfigError)  # the command line prints it without a traceback


def test_context_too_short_for_the_generation_prompt_names_the_smallest_value():
    # tiny-random is byte-level: '<|im_start|>' is one token, 'assistant\n' ten: the prompt is 11 tokens
    with pytest.raises(ConfigError, match=r"max_context_tokens=10 is too small.*generation prompt "
                                          r"'<\|im_start\|>assistant\\n' alone is 11 tokens.*max_context_tokens >= 12$"):
        gym.make("dialogue_env/Dialogue-v0", dataset=DIALOGUES, **{**TINY, "max_context_tokens": 10,
                                                                     "system_prompt": None})
    with pytest.raises(ConfigError, match=r"max_context_tokens >= 12 \(>= (\d+) to also keep the system prompt"):
        gym.make("dialogue_env/Dialogue-v0", dataset=DIALOGUES, **{**TINY, "max_context_tokens": 11,
                                                                     "system_prompt": "Be brief."})
    env = gym.make("dialogue_env/Dialogue-v0", dataset=DIALOGUES, **{**TINY, "max_context_tokens": 12,
                                                                       "system_prompt": None}).unwrapped
    obs, info = env.reset(seed=0)
    kept = obs["input_ids"][obs["attention_mask"].astype(bool)]
    assert env.tokenizer.decode(kept).endswith("<|im_start|>assistant\n") and info["context_truncated"]


def test_a_tokenizer_larger_than_the_models_vocabulary_is_an_error(tmp_path):
    from dialogue_env.models import tiny_model, tiny_tokenizer

    tiny_model(200).save_pretrained(tmp_path)  # 200 < 259 tokens of the tiny tokenizer
    with pytest.raises(ConfigError, match=r"the tokenizer has 259 tokens but model .* has an output layer of 200"):
        gym.make("dialogue_env/Dialogue-v0", dataset=DIALOGUES, tokenizer=tiny_tokenizer(),
                 **{**TINY, "model": str(tmp_path)})


def test_a_system_prompt_that_is_not_text_is_a_config_error_naming_it():
    from rewards.utils import ConfigTypeError

    with pytest.raises(ConfigTypeError, match="system_prompt=5 must be a string, None"):
        gym.make("dialogue_env/Dialogue-v0", model="tiny-random", reward="length", system_prompt=5)

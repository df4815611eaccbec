"""The one rollout collector: LM actors (multi-turn included) against an uncached replay, predict actors on the
top-k features env, and the narrow env surface agents use."""

import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import dialogue_env  # noqa: F401
from agents.baselines import RandomAgent
from agents.collect import collect
from dialogue_env.models import load_policy
from dialogue_env.wrappers import make_topk_features_vec

ENV = {"model": "tiny-random", "reward": "length", "max_context_tokens": 256, "device": "cpu"}


@pytest.fixture(scope="module")
def lm():
    return load_policy("tiny-random")[0]


def _greedy_replay(lm, dialogue_index, turns, max_new_tokens):
    """The same episode on the single env, every token the argmax of a full uncached forward of the observation."""
    env = gym.make("dialogue_env/Dialogue-v0", turns=turns, max_new_tokens=max_new_tokens, **ENV)
    obs, _ = env.reset(seed=0, options={"dialogue_index": dialogue_index})
    replies, done = [], False
    while not done:
        ids = torch.as_tensor(obs["input_ids"])[torch.as_tensor(obs["attention_mask"]).bool()]
        with torch.no_grad():
            token = int(lm(input_ids=ids.unsqueeze(0)).logits[0, -1].argmax())
        obs, _, terminated, truncated, info = env.step(token)
        done = terminated or truncated
        if "response" in info:
            replies.append(info["response"])
    return replies


def test_multi_turn_lm_collection_equals_an_uncached_replay(lm):
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=3, vectorization_mode="vector_entry_point", turns=2,
                        max_new_tokens=5, return_tensors=True, **ENV)
    indices = [0, 7, 3]
    ro = collect(venv, lm, greedy=True, dialogue_indices=indices)
    for i, d in enumerate(indices):
        assert [rec["response"] for rec in ro.turns[i]] == _greedy_replay(lm, d, turns=2, max_new_tokens=5)
        assert ro.scores[i] == pytest.approx(sum(rec["reward"] for rec in ro.turns[i]))
    assert all(1 <= len(t) <= 2 for t in ro.turns) and any(len(t) == 2 for t in ro.turns) and int(ro.response_mask.sum(1).max()) <= 2 * 5
    # the rollout is the conversation's token stream: sequence() is what the policy read before its last token
    ids, mask = ro.sequence()
    tok = venv.unwrapped.tokenizer
    for i, turns in enumerate(ro.turns):
        if len(turns) == 2:
            text = tok.decode(ids[i][mask[i].bool()])
            assert turns[1]["context"][-1]["content"] in text and text.count("<|im_start|>assistant") == 2
    with pytest.raises(ValueError, match="turns=1"):
        collect(venv, lm, greedy=True, capture_layer=1)


def test_predict_actor_on_topk_features_gets_tokens_and_reference_logprobs_from_info():
    venv = make_topk_features_vec(4, max_new_tokens=6, **ENV)
    agent = RandomAgent(venv.single_action_space.n, seed=0, observation_kind="features")
    ro = collect(venv, agent, seed=3, dialogue_indices=[0, 1, 2, 3])
    tok = venv.unwrapped.tokenizer
    eos = set(venv.unwrapped.eos_token_ids)
    for i in range(4):
        tokens = [int(t) for t, m in zip(ro.response_ids[i], ro.response_mask[i]) if m and int(t) not in eos]
        assert tok.decode(tokens, skip_special_tokens=True).strip() == ro.responses[i]
    assert ro.ref_logprobs is not None and ro.ref_logprobs.shape == ro.response_ids.shape
    assert float(ro.ref_logprobs.max()) <= 0.0
    assert ro.logprobs is not None  # RandomAgent says log(1/k) for every action
    live = ro.response_mask.bool()
    assert torch.allclose(ro.logprobs[live], torch.full_like(ro.logprobs[live], -np.log(50)), atol=1e-5)


def test_collect_rejects_what_cannot_act(lm):
    topk = make_topk_features_vec(2, max_new_tokens=4, **ENV)
    with pytest.raises(ValueError, match="Dialogue-v0"):
        collect(topk, lm)
    with pytest.raises(TypeError, match="neither a causal language model"):
        collect(topk, object())


def test_agents_use_only_the_public_env_surface():
    """Nothing outside dialogue_env/ reads an env's internal state (its token buffers or its reference model)."""
    internal = re.compile(r"\b(?:env|envs|venv|unwrapped)\.(?:batch|ref)\b")
    offenders = []
    for path in Path(__file__).resolve().parents[1].joinpath("agents").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if internal.search(line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert not offenders, offenders


class _Scripted:
    """A predict agent that writes given token ids, one per step, on Dialogue-v0 (one script per sub-env)."""

    observation_kind = "tokens"

    def __init__(self, scripts):
        self.scripts, self.t = scripts, 0

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        if episode_start is not None and np.all(episode_start):
            self.t = 0
        actions = np.asarray([s[min(self.t, len(s) - 1)] for s in self.scripts])
        self.t += 1
        return actions, state


def test_a_gated_reply_keeps_the_gates_nested_details_through_the_collector():
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        model="tiny-random", reward={"length": 1.0, "ethics": 1.0}, max_new_tokens=24,
                        max_context_tokens=256)
    tok = venv.unwrapped.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    scripts = [tok("Shut up, idiot.", add_special_tokens=False)["input_ids"] + [eos],
               tok("Sorry, no.", add_special_tokens=False)["input_ids"] + [eos]]
    ro = collect(venv, _Scripted(scripts), dialogue_indices=[0, 1])
    assert ro.responses == ["Shut up, idiot.", "Sorry, no."]
    gate = ro.details[0]["gate"]
    assert gate["reason"].startswith("ethics: blocklist") and ro.scores[0] == pytest.approx(gate["floor"])
    assert "gate" not in ro.details[1] and ro.scores[1] > ro.scores[0]

"""The LM reward model (a causal LM + scalar head on the last token, `learned` with kind "lm"), on the tiny random
Llama: the split forward, learning a separable preference measured on held-out pairs, saving/loading, the reward
module, the command line; and preference pairs in TRL's format, both ways.
"""

import json
import random

import numpy as np
import pytest
import torch

import dialogue_env  # noqa: F401  (registers tiny-random and smollm2-135m as LM backbones)
import rewards
from agents.cli import main
from dialogue_env.data import Preference
from rewards.jsonl import DatasetError, write_jsonl
from rewards.learned import CONFIG_FILE, RewardModelError, load_reward_model, save_reward_model
from rewards.learned_lm import LMBackbone, chat_text, is_causal_lm
from rewards.learned_train import train_lm_reward_model
from rewards.preferences import load_preferences, to_trl

QUESTIONS = ["My internet keeps dropping.", "I was charged twice.", "Where is my parcel?",
             "How do I reset my password?", "Can I return these headphones?", "My screen cracked.",
             "I want to cancel my contract.", "Is there 5G in my town?", "Please upgrade my plan.",
             "My laptop battery drains fast."]
HELPFUL = ["Thank you for asking, I will sort that out for you right away today.",
           "Happy to help: I have fixed it and sent you a confirmation email now.",
           "Sorry about that; I have checked your account and the problem is solved."]
CURT = ["no", "go away", "whatever", "not my problem"]


def toy_pairs(questions, n, seed):
    """A preference any reader can separate: a helpful sentence is preferred to a curt word."""
    rng = random.Random(seed)
    return [Preference(context=({"role": "user", "content": rng.choice(questions)},),
                       chosen=f"{rng.choice(HELPFUL)} Ref {rng.randint(1, 99)}.",
                       rejected=rng.choice(CURT) + "!" * rng.randint(0, 2), meta={"rejected_kind": "curt"})
            for _ in range(n)]


TRAIN, TEST = toy_pairs(QUESTIONS[:7], 48, 0), toy_pairs(QUESTIONS[7:], 16, 1)  # held out: unseen questions


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model, cfg = train_lm_reward_model(TRAIN, TEST, backbone="tiny-random", num_layers_unfrozen=1, epochs=8,
                                       progress=False, data_source="toy")
    return model, cfg, save_reward_model(model, tmp_path_factory.mktemp("rm") / "lm", cfg)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_the_top_layers_on_cached_trunk_states_equal_the_full_forward(k):
    lm = LMBackbone("tiny-random", num_layers_unfrozen=k)
    ids = lm.encode([chat_text([{"role": "user", "content": "Hello?"}], "Hi, how can I help?"), "short"])
    full = lm(ids)
    assert full.shape == (2, lm.hidden_size)
    assert torch.allclose(lm.top(lm.trunk_states(ids)), full, atol=1e-5)
    assert [p.requires_grad for p in lm.decoder.layers[-1].parameters()][0] == (k > 0)
    with pytest.raises(RewardModelError, match="num_layers_unfrozen=3"):
        LMBackbone("tiny-random", num_layers_unfrozen=3)


def test_chat_text_keeps_the_last_turns_without_system_prompts():
    ctx = [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "a"},
           {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert chat_text(ctx, "d", turns=2) == ("<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n"
                                            "<|im_start|>assistant\nd<|im_end|>")


def test_learns_a_separable_preference_measured_on_held_out_pairs(trained):
    model, cfg, _ = trained
    assert cfg.kind == "lm" and cfg.backbone == "tiny-random" and cfg.embedding_dim == 64
    m = cfg.metrics
    assert m["n_test"] == len(TEST) and m["accuracy"] >= 0.9, m
    assert m["accuracy_by_kind"]["curt"]["n"] == len(TEST)
    # measured on the held-out pairs themselves: recompute from the model's scores
    a = model.score([p.context for p in TEST], [p.chosen for p in TEST], normalize=False)
    b = model.score([p.context for p in TEST], [p.rejected for p in TEST], normalize=False)
    assert np.mean(a > b) == pytest.approx(m["accuracy"])
    # before training the head is zero: every reply ties, no pair is right
    untrained, _ = train_lm_reward_model(TRAIN[:1], TEST, backbone="tiny-random", num_layers_unfrozen=0, epochs=1,
                                         lr=1e-12, progress=False)
    u = untrained.score([p.context for p in TEST], [p.chosen for p in TEST], normalize=False)
    assert np.allclose(u, u[0], atol=1e-6)


def test_save_then_load_gives_identical_scores_and_the_learned_reward(trained):
    model, cfg, path = trained
    saved = json.loads((path / CONFIG_FILE).read_text())
    assert saved["kind"] == "lm" and saved["version"] == 2 and saved["backbone"] == "tiny-random"
    from safetensors.torch import load_file

    keys = set(load_file(str(path / "model.safetensors")))
    assert {k for k in keys if k.startswith("backbone.")} and all(
        k.startswith(("head.", "backbone.layers.1.", "backbone.norm.")) for k in keys)
    loaded = load_reward_model(path)
    contexts = [p.context for p in TEST] + [[{"role": "user", "content": "Hello"}]]
    replies = [p.chosen for p in TEST] + ["Hi there!"]
    assert np.array_equal(loaded.score(contexts, replies), model.score(contexts, replies))
    reward = rewards.make("learned", path=str(path))
    expected = np.clip(model.score(contexts, replies), -5, 5)
    assert np.allclose(reward(contexts, replies), expected, atol=1e-6)
    # in a gated composite, as PPO uses it
    comp = rewards.make_composite({"learned": {"weight": 1.0, "path": str(path)}, "ethics": 1.0})
    assert np.allclose(comp(contexts, replies), expected, atol=1e-5)


def test_under_bf16_autocast_a_bf16_copy_scores_and_nothing_saved_changes(trained):
    """The trainer's dtype autocast: the reward model scores with a bfloat16 copy of its decoder (made once), close
    to the float32 scores; the model itself, and what it saves, stay float32."""
    model, _, _ = trained
    contexts, replies = [p.context for p in TEST], [p.chosen for p in TEST]
    exact = model.score(contexts, replies, normalize=False)
    saved = model.state_for_saving()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model.score(contexts, replies, normalize=False)
        again = model.score(contexts, replies, normalize=False)
    assert len(model._low) == 1 and next(model._low[0].parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert np.array_equal(low, again) and not np.array_equal(low, exact)
    assert np.allclose(low, exact, atol=0.05 * np.abs(exact).max() + 1e-3)
    assert saved.keys() == model.state_for_saving().keys()
    assert np.array_equal(model.score(contexts, replies, normalize=False), exact)  # outside autocast: float32


def test_a_newer_or_unknown_kind_is_refused_clearly(trained, tmp_path):
    _, cfg, path = trained
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    data = json.loads((bad / CONFIG_FILE).read_text())
    data["kind"] = "quantum"
    (bad / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(RewardModelError, match="unknown kind 'quantum'"):
        load_reward_model(bad)


def test_the_command_trains_an_lm_model_and_prints_per_kind_accuracy(tmp_path, capsys):
    data = tmp_path / "prefs.jsonl"
    write_jsonl(data, to_trl(TRAIN + TEST))  # TRL's format is read as training data too
    out = tmp_path / "rm"
    assert main(["reward-model", "train", "--backbone", "tiny-random", "--data", str(data), "--out", str(out),
                 "--epochs", "3", "--num-layers-unfrozen", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "lm model on tiny-random" in printed and "accuracy[curt]" in printed
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["kind"] == "lm" and config["training"]["epochs"] == 3 and config["num_layers_unfrozen"] == 1
    assert is_causal_lm("tiny-random") and not is_causal_lm("minilm")


# --- TRL's preference format ------------------------------------------------------------------------------------

def test_pairs_go_to_trl_format_and_back(tmp_path):
    pairs = TRAIN[:5] + [Preference(context=({"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Hello!"},
                                             {"role": "user", "content": "Bill?"}),
                                    chosen="It is 20 pounds.", rejected="Dunno.", id="p1")]
    for implicit in (True, False):
        rows = to_trl(pairs, implicit_prompt=implicit)
        if implicit:
            assert rows[-1]["chosen"][-1] == {"role": "assistant", "content": "It is 20 pounds."}
            assert rows[-1]["chosen"][:-1] == rows[-1]["rejected"][:-1] == [dict(m) for m in pairs[-1].context]
        else:
            assert rows[-1]["prompt"] == [dict(m) for m in pairs[-1].context]
        path = tmp_path / f"trl_{implicit}.jsonl"
        write_jsonl(path, rows)
        assert load_preferences(path) == pairs
    # TRL's own helper splits our implicit-prompt rows into the prompt and the two replies we wrote
    from trl.data_utils import extract_prompt

    row = extract_prompt(to_trl(pairs[-1:])[0])
    assert row["prompt"] == [dict(m) for m in pairs[-1].context] and row["rejected"][0]["content"] == "Dunno."


def test_the_convert_command_writes_trl_rows_that_load_back(tmp_path):
    out = tmp_path / "trl.jsonl"
    assert main(["reward-model", "convert", "--data", "customer_service", "--split", "test", "--to", "trl",
                 "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 80 and all(r["chosen"][-1]["role"] == "assistant" for r in rows)
    back = tmp_path / "pairs.jsonl"
    assert main(["reward-model", "convert", "--data", str(out), "--to", "pairs", "--out", str(back)]) == 0
    from rewards.preferences import load_preference_dataset

    assert load_preferences(back) == load_preference_dataset("customer_service", "test")


@pytest.mark.parametrize("row, problem", [
    ({"chosen": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
      "rejected": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "c"}]}, "differ before"),
    ({"chosen": [{"role": "user", "content": "a"}], "rejected": [{"role": "user", "content": "a"}]},
     "end with an assistant message"),
    ({"prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "assistant", "content": "b"}] * 2,
      "rejected": [{"role": "assistant", "content": "c"}]}, "one assistant message"),
])
def test_a_bad_trl_line_names_the_file_the_line_and_the_problem(tmp_path, row, problem):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [to_trl(TRAIN[:1])[0], row])
    with pytest.raises(DatasetError, match=rf"bad.jsonl, line 2: .*{problem}"):
        load_preferences(path)

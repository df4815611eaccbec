"""The learned reward: Bradley-Terry maths, training, saving/loading, the reward module, the CLI, PPO configs.

All of it runs the real all-MiniLM-L6-v2 backbone (bundled, offline). The slow test trains on the shipped
customer-service preference pairs and checks the held-out accuracy the README reports.
"""

import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import rewards
from agents.ppo.config import PPOConfig, parse_overrides
from agents.reward_model import load_pairs
from dialogue_env.data import Preference
from rewards.learned import (
    CONFIG_FILE,
    ENV_PATH,
    WEIGHTS_FILE,
    LearnedReward,
    RewardModel,
    RewardModelConfig,
    RewardModelError,
    TextEncoder,
    format_context,
    load_reward_model,
    save_reward_model,
)
from rewards.learned_train import accuracy_by_kind, bradley_terry_loss, pairwise_accuracy, train_reward_model

ROOT = Path(__file__).resolve().parents[1]

# 16 customer-service questions, each with a reply that answers it. A pair prefers a question's own answer to the
# answer of another question, so what there is to learn is relevance, a relation between context and reply:
# the model trains on the first 10 topics and is tested on the 6 it never saw.
TOPICS = [
    ("My internet keeps dropping every evening.",
     "Let's fix the connection: restart the router and check the cable is firmly plugged in."),
    ("I was charged twice for my phone bill this month.",
     "I can see the duplicate payment on your account; I've refunded the second charge to your card."),
    ("My parcel still hasn't arrived after ten days.",
     "I've checked the tracking: the courier lost the parcel, so I'm sending a replacement today."),
    ("How do I reset my account password?",
     "Use the 'forgot password' link on the login page and follow the email we send you."),
    ("Can I return these headphones I bought last week?",
     "Yes, you can return unused headphones within 30 days for a full refund."),
    ("My phone screen cracked after I dropped it.",
     "Screen damage from a drop isn't covered by warranty, but our repair shop can replace it."),
    ("I want to cancel my contract.",
     "I can cancel it for you; your service will end at the close of this billing month."),
    ("Is there 5G coverage in my town?",
     "Yes, your postcode has 5G outdoors and 4G indoors on our network map."),
    ("I'd like to upgrade to a plan with more data.",
     "The Unlimited plan gives you unlimited data for 30 pounds a month; I can switch you today."),
    ("The battery on my new laptop drains in an hour.",
     "That sounds like a faulty battery; we'll replace the laptop under warranty."),
    ("Why is my roaming bill so high after my holiday?",
     "Roaming outside Europe is charged per megabyte, which explains the extra cost."),
    ("I never received the verification text message.",
     "I've resent the code; it can take a few minutes, so check that your number is correct."),
    ("My voicemail isn't working.",
     "Dial 121 to set up your voicemail again, then test it by calling your own number."),
    ("Can I add my daughter to my family plan?",
     "Yes, adding a family member costs 8 pounds a month and she keeps her own number."),
    ("The delivery driver left my box out in the rain.",
     "I'm sorry the box got wet; if anything inside is damaged we'll send a replacement."),
    ("My SIM card says no service.",
     "Try reinserting the SIM and restarting; if it persists I'll post you a new SIM for free."),
]


def relevance_pairs(topics, shifts=(1, 2, 3)) -> list[Preference]:
    out = []
    for a, i in enumerate(topics):
        for s in shifts:
            j = topics[(a + s) % len(topics)]
            out.append(Preference(context=({"role": "user", "content": TOPICS[i][0]},), chosen=TOPICS[i][1],
                                  rejected=TOPICS[j][1], meta={"rejected_kind": "off_topic"}))
    return out


TRAIN, TEST = relevance_pairs(range(10)), relevance_pairs(range(10, 16))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A frozen-backbone model trained on the relevance pairs, and the directory it was saved to."""
    model, cfg = train_reward_model(TRAIN, TEST, epochs=40, progress=False, seed=0, data_source="relevance")
    out = save_reward_model(model, tmp_path_factory.mktemp("rm") / "relevance", cfg)
    return model, cfg, out


# --- the maths ---------------------------------------------------------------------------------------------

def test_bradley_terry_loss_and_accuracy_match_a_naive_loop():
    rng = np.random.default_rng(0)
    c, r = rng.normal(size=50) * 3, rng.normal(size=50) * 3
    r[:5] = c[:5]  # ties count as wrong
    naive_loss = sum(-math.log(1.0 / (1.0 + math.exp(-(a - b)))) for a, b in zip(c, r)) / len(c)
    loss = bradley_terry_loss(torch.tensor(c), torch.tensor(r))
    assert float(loss) == pytest.approx(naive_loss, rel=1e-12)
    naive_acc = sum(1 for a, b in zip(c, r) if a > b) / len(c)
    assert pairwise_accuracy(c, r) == naive_acc
    # numerically stable where the naive formula overflows: a wrong margin of 1000 costs 1000 nats
    assert float(bradley_terry_loss(torch.tensor([0.0]), torch.tensor([1000.0]))) == pytest.approx(1000.0)
    assert float(bradley_terry_loss(torch.tensor([1000.0]), torch.tensor([0.0]))) == pytest.approx(0.0, abs=1e-12)
    # the gradient is sigmoid(s_r - s_c) / N pushing chosen up and rejected down
    sc, sr = torch.tensor([0.3, -1.0], requires_grad=True), torch.tensor([0.1, 2.0], requires_grad=True)
    bradley_terry_loss(sc, sr).backward()
    expected = -torch.sigmoid(sr.detach() - sc.detach()) / 2
    torch.testing.assert_close(sc.grad, expected)
    torch.testing.assert_close(sr.grad, -expected)
    kinds = [["rude", "vague", None][i % 3] for i in range(50)]
    by_kind = accuracy_by_kind(kinds, c, r)
    assert set(by_kind) == {"rude", "vague"}
    for kind, m in by_kind.items():
        idx = [i for i in range(50) if kinds[i] == kind]
        assert m["n"] == len(idx) and m["correct"] == sum(c[i] > r[i] for i in idx)
        assert m["accuracy"] == m["correct"] / m["n"]
    with pytest.raises(ValueError, match="chosen scores"):
        pairwise_accuracy([1.0, 2.0], [0.0])


def test_format_context_keeps_the_last_turns_and_skips_system_prompts():
    ctx = [{"role": "system", "content": "You are a support agent."}, {"role": "user", "content": "a"},
           {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert format_context(ctx, turns=2) == "assistant: b\nuser: c"
    assert format_context(ctx, turns=3) == format_context(ctx[1:], turns=3) == "user: a\nassistant: b\nuser: c"
    assert format_context("hello") == "user: hello"


def test_the_frozen_encoder_equals_sentence_transformers_and_the_split_forward_equals_the_full_one():
    from rewards.embeddings import get_encoder

    texts = ["My router keeps dropping the wifi.", "Thanks, that fixed it!", TOPICS[3][1]]
    enc = TextEncoder("minilm")
    ours = enc(texts).detach()
    theirs = get_encoder(None, "cpu").encode(texts, convert_to_tensor=True, normalize_embeddings=True)
    torch.testing.assert_close(ours, theirs.cpu(), atol=1e-5, rtol=0)
    for k in (1, 2):
        split = TextEncoder("minilm", num_layers_unfrozen=k)
        with torch.no_grad():
            torch.testing.assert_close(split.top(split.trunk_states(texts)), split(texts), atol=1e-5, rtol=0)
        assert split.split == 6 - k and len(split.trainable_state()) > 0
    with pytest.raises(RewardModelError, match="num_layers_unfrozen=7"):
        TextEncoder("minilm", num_layers_unfrozen=7)


# --- training ----------------------------------------------------------------------------------------------

def test_training_learns_relevance_and_generalises_to_unseen_topics(trained):
    model, cfg, _ = trained
    m = cfg.metrics
    # chance is 0.5 and the loss of a model with no preference is ln 2 = 0.693
    assert m["accuracy"] >= 0.9 and m["n_test"] == len(TEST) == 18
    assert m["test_loss"] < 0.4 and m["train_loss"] < 0.4
    assert m["accuracy_by_kind"]["off_topic"]["n"] == 18
    # an untrained head on the same backbone does not know relevance
    fresh = RewardModel(RewardModelConfig(), model.encoder)
    ctxs = [p.context for p in TEST]
    untrained = pairwise_accuracy(fresh.score(ctxs, [p.chosen for p in TEST], normalize=False),
                                  fresh.score(ctxs, [p.rejected for p in TEST], normalize=False))
    assert m["accuracy"] > untrained
    # the config records the data, the sizes and the normalisation
    assert cfg.training["n_train"] == 30 and len(cfg.training["data_sha256"]) == 64
    assert cfg.head_sizes == [4 * 384, 256, 1]
    scores = np.concatenate([model.score([p.context for p in TRAIN], [getattr(p, k) for p in TRAIN],
                                         normalize=True) for k in ("chosen", "rejected")])
    assert scores.mean() == pytest.approx(0.0, abs=1e-5) and scores.std() == pytest.approx(1.0, abs=1e-5)


def test_training_is_reproducible_for_a_seed():
    _, a = train_reward_model(TRAIN[:12], TEST[:6], epochs=3, progress=False, seed=3)
    _, b = train_reward_model(TRAIN[:12], TEST[:6], epochs=3, progress=False, seed=3)
    assert a.metrics["test_loss"] == b.metrics["test_loss"] and a.score_mean == b.score_mean


def test_fine_tuned_top_layer_is_saved_and_restored(tmp_path):
    model, cfg = train_reward_model(TRAIN, TEST, epochs=3, num_layers_unfrozen=1, backbone_lr=1e-4,
                                    progress=False, seed=0)
    pristine = TextEncoder("minilm").model.state_dict()
    tuned = model.encoder.trainable_state()
    assert tuned and all(k.startswith("encoder.layer.5.") for k in tuned)
    assert any(not torch.equal(v, pristine[k]) for k, v in tuned.items())  # the layer did train
    save_reward_model(model, tmp_path / "ft", cfg)
    again = load_reward_model(tmp_path / "ft")
    ctxs, replies = [p.context for p in TEST], [p.chosen for p in TEST]
    assert np.array_equal(again.score(ctxs, replies), model.score(ctxs, replies))
    assert json.loads((tmp_path / "ft" / CONFIG_FILE).read_text())["num_layers_unfrozen"] == 1


# --- saving, loading, the reward module ----------------------------------------------------------------------

def test_save_then_load_gives_identical_scores_and_a_reward_module(trained):
    model, cfg, out = trained
    assert sorted(os.listdir(out)) == sorted([CONFIG_FILE, WEIGHTS_FILE])
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved["format"] == "dialogue-rl-reward-model" and saved["backbone"] == "minilm"
    assert saved["metrics"]["accuracy"] == cfg.metrics["accuracy"] and saved["head_sizes"] == [1536, 256, 1]
    again = load_reward_model(out)
    ctxs = [p.context for p in TEST] + [[{"role": "system", "content": "Be kind."}, *TEST[0].context]]
    replies = [p.rejected for p in TEST] + ["Of course!"]
    expected = model.score(ctxs, replies)
    assert np.array_equal(again.score(ctxs, replies), expected)
    raw = again.score(ctxs, replies, normalize=False)
    np.testing.assert_allclose(raw, expected * cfg.score_std + cfg.score_mean, rtol=0, atol=1e-9)
    # through the registry, alone and in a composite with the ethics gate
    r = rewards.make("learned", path=str(out), device="cpu")
    assert isinstance(r, LearnedReward) and r.name == "learned"
    assert r(ctxs, replies) == pytest.approx(expected.tolist(), abs=1e-9)
    comp = rewards.make({"learned": {"weight": 2.0, "path": str(out)}, "ethics": 1.0}, device="cpu")
    res = comp.score([TEST[0].context] * 2, [TEST[0].chosen, "You idiot, restart it yourself."])
    assert comp.names == ["learned", "ethics"]
    assert res.components["ethics"].tolist() == [1.0, 0.0]
    assert res.total[0] == pytest.approx(2.0 * res.components["learned"][0], rel=1e-6)
    assert r.bounds == (-5.0, 5.0) and res.total[1] == comp.gate_floor == 2.0 * -5.0 - 1.0  # below every safe reply
    # picklable without the model inside, and the copy scores the same
    blob = pickle.dumps(comp)
    assert len(blob) < 20_000
    assert pickle.loads(blob).score(ctxs, replies).total == pytest.approx(comp.score(ctxs, replies).total)
    # the good answers outscore the off-topic ones on unseen topics
    good = r([p.context for p in TEST], [p.chosen for p in TEST])
    bad = r([p.context for p in TEST], [p.rejected for p in TEST])
    assert np.mean(np.array(good) > np.array(bad)) >= 0.9


def test_the_reward_is_clipped_to_its_bounds(trained):
    model, cfg, out = trained
    ctxs, replies = [p.context for p in TEST], [p.chosen for p in TEST] + [p.rejected for p in TEST]
    ctxs = ctxs + ctxs
    s = model.score(ctxs, replies)
    assert s.max() > 0.5 and s.min() < -0.5  # so a clip of 0.5 std cuts both ends
    narrow = LearnedReward(out, clip=0.5)
    assert narrow.bounds == (-0.5, 0.5)
    np.testing.assert_allclose(narrow(ctxs, replies), np.clip(s, -0.5, 0.5), atol=1e-9)
    raw = LearnedReward(out, clip=0.5, normalize=False)
    lo, hi = cfg.score_mean - 0.5 * cfg.score_std, cfg.score_mean + 0.5 * cfg.score_std
    assert raw.bounds == pytest.approx((lo, hi))
    np.testing.assert_allclose(raw(ctxs, replies), np.clip(model.score(ctxs, replies, normalize=False), lo, hi),
                               atol=1e-9)
    # a negative weight: the worst safe total is -1 * 5, the gated one -6; real replies included
    flipped = rewards.make({"learned": {"weight": -1.0, "path": str(out)}, "ethics": 1.0})
    total = flipped(ctxs + [ctxs[0]], replies + ["You idiot, restart it yourself."])
    assert flipped.gate_floor == -6.0 == total[-1] < total[:-1].min() and total[:-1].min() >= -5.0
    free = LearnedReward(out, clip=None)
    assert free.bounds is None and free(ctxs, replies) == pytest.approx(s.tolist(), abs=1e-9)
    with pytest.raises(ValueError, match="no bounds"):  # unclipped, nothing is sure to score below it
        rewards.make({"learned": {"weight": 1.0, "path": str(out), "clip": None}, "ethics": 1.0})
    with pytest.raises(ValueError, match="clip must be"):
        LearnedReward(out, clip=0)


def test_the_path_may_come_from_the_environment(trained, monkeypatch):
    _, _, out = trained
    monkeypatch.setenv(ENV_PATH, str(out))
    assert rewards.make("learned").path == str(Path(out).resolve())
    monkeypatch.delenv(ENV_PATH)
    with pytest.raises(RewardModelError, match="dialogue-rl reward-model train"):
        rewards.make("learned")


def test_bad_paths_give_an_error_naming_the_path_and_the_fix(tmp_path, trained, monkeypatch):
    monkeypatch.delenv(ENV_PATH, raising=False)
    missing = tmp_path / "nope"
    with pytest.raises(RewardModelError) as err:
        rewards.make("learned", path=str(missing))
    assert str(missing) in str(err.value) and "dialogue-rl reward-model train" in str(err.value)
    with pytest.raises(RewardModelError, match="not a reward-model directory"):  # a directory, no config
        rewards.make({"learned": {"weight": 1.0, "path": str(tmp_path)}, "ethics": 1.0})
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(RewardModelError, match="is a file"):
        rewards.make("learned", path=str(tmp_path / "file.txt"))
    # a config of something else, a config without weights, weights that do not fit the config
    _, _, good = trained
    other = tmp_path / "other"
    other.mkdir()
    (other / CONFIG_FILE).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(RewardModelError, match="not a dialogue-rl reward-model config"):
        load_reward_model(other)
    (other / CONFIG_FILE).write_text("{not json")
    with pytest.raises(RewardModelError, match="not valid JSON"):
        load_reward_model(other)
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / CONFIG_FILE).write_text((good / CONFIG_FILE).read_text())
    with pytest.raises(RewardModelError, match=f"no {WEIGHTS_FILE}"):
        rewards.make("learned", path=str(no_weights))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / WEIGHTS_FILE).write_bytes((good / WEIGHTS_FILE).read_bytes())
    cfg = json.loads((good / CONFIG_FILE).read_text())
    cfg["hidden"] = 64
    (wrong / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(RewardModelError, match="weights do not fit"):
        load_reward_model(wrong)


def test_a_model_deleted_after_the_module_was_built_fails_clearly(trained, tmp_path):
    import shutil

    _, _, out = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    comp = rewards.make({"learned": {"weight": 1.0, "path": str(copy)}, "ethics": 1.0})
    shutil.rmtree(copy)
    with pytest.raises(rewards.RewardError, match=f"reward model {copy}: no such directory"):
        comp.score([TEST[0].context], ["hello"])


def test_saving_is_atomic_and_replaces_an_older_model(tmp_path, trained, monkeypatch):
    import rewards.learned as learned

    model, cfg, _ = trained
    out = tmp_path / "rm"
    save_reward_model(model, out, cfg)
    before = (out / WEIGHTS_FILE).read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_reward_model(model, out, cfg)
    monkeypatch.undo()
    assert (out / WEIGHTS_FILE).read_bytes() == before  # the old model is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rm"]  # no temporary directory left behind
    save_reward_model(model, out, cfg)  # replacing a reward model is allowed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rm"]
    # the reloaded model scores like the saved one (to float precision: the embedding batch differs by call order)
    np.testing.assert_allclose(learned.load_reward_model(out).score([TEST[0].context], ["hi"]),
                               model.score([TEST[0].context], ["hi"]), rtol=1e-5, atol=1e-6)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(RewardModelError, match="not a reward-model directory"):
        save_reward_model(model, tmp_path / "busy", cfg)


# --- the command's data handling ----------------------------------------------------------------------------

def test_load_pairs_holds_out_a_seeded_fraction_of_a_file(tmp_path):
    from dialogue_env.data import DatasetError, write_jsonl

    path = tmp_path / "prefs.jsonl"
    write_jsonl(path, [{"context": list(p.context), "chosen": p.chosen, "rejected": p.rejected} for p in TRAIN])
    train, test, _, src = load_pairs(str(path), None, 0.2, seed=1)
    assert len(test) == 6 and len(train) == 24 and "held-out 6 of 30" in src
    assert {p.chosen + p.rejected for p in train}.isdisjoint({p.chosen + p.rejected for p in test})
    assert [p.rejected for p in load_pairs(str(path), None, 0.2, seed=1)[1]] == [p.rejected for p in test]
    assert load_pairs(str(path), None, None, seed=1)[3] == src  # the default share is 0.2
    train2, test2, _, _ = load_pairs(str(path), str(path), None, seed=1)
    assert len(train2) == len(test2) == 30
    shipped_train, shipped_test, _, _ = load_pairs("customer_service", None, None, seed=0)
    assert (len(shipped_train), len(shipped_test)) == (400, 80)
    # a share given where the test pairs come from elsewhere would be ignored: an error that says so
    for data, test in (("customer_service", None), (str(path), str(path))):
        with pytest.raises(ValueError, match="--test-fraction 0.3 would not be used: the test pairs are"):
            load_pairs(data, test, 0.3, seed=0)
    with pytest.raises(ValueError, match="--test-fraction"):
        load_pairs(str(path), None, 0.0, seed=0)
    with pytest.raises(DatasetError, match="no such file"):
        load_pairs(str(tmp_path / "missing.jsonl"), None, 0.2, seed=0)


def test_the_command_reports_bad_data_clearly(tmp_path):
    from agents.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "hi", "chosen": "a"}\n')
    with pytest.raises(SystemExit) as err:
        main(["reward-model", "train", "--data", str(bad), "--out", str(tmp_path / "rm")])
    assert "bad.jsonl, line 1" in str(err.value.code) and "'rejected'" in str(err.value.code)
    assert not (tmp_path / "rm").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as err:  # refused before any training
        main(["reward-model", "train", "--out", str(busy)])
    assert f"--out {busy} exists and is not a reward-model directory" in str(err.value.code)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


# --- PPO configs carry the learned reward ---------------------------------------------------------------------

def test_a_ppo_config_carries_the_learned_reward_from_set_and_from_yaml(trained, tmp_path):
    _, _, out = trained
    overrides = parse_overrides([f"reward={{learned: {{weight: 1.0, path: {out}}}, ethics: 1.0}}"])
    cfg = PPOConfig.from_yaml(ROOT / "configs" / "tiny.yaml", **overrides)
    assert cfg.reward == {"learned": {"weight": 1.0, "path": str(out)}, "ethics": 1.0}
    yaml_path = tmp_path / "learned.yaml"
    yaml_path.write_text(f"model: tiny-random\nreward:\n  learned:\n    weight: 0.5\n    path: {out}\n  ethics: 1.0\n")
    cfg2 = PPOConfig.from_yaml(yaml_path)
    for c, w in ((cfg, 1.0), (cfg2, 0.5)):
        comp = rewards.make_composite(c.reward, device="cpu")
        assert comp.names == ["learned", "ethics"] and comp.weights["learned"] == w
        assert np.isfinite(comp([TEST[0].context], [TEST[0].chosen])).all()
    # the config still round-trips through the run's config.json
    assert PPOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).reward == cfg.reward


# --- the shipped preference set ------------------------------------------------------------------------------

@pytest.mark.slow
def test_shipped_preferences_reach_85_percent_held_out_accuracy(tmp_path, capsys):
    """The command as the README runs it, default settings: >= 85% on the 80 shipped test pairs, and the kinds a
    politeness detector cannot tell apart (vague, off topic) are learned too. ~20-40 s on 2 CPU cores."""
    from agents.cli import main

    assert main(["reward-model", "train", "--out", str(tmp_path / "rm"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("held-out pairwise accuracy"))
    acc = float(line.split(":")[1].split()[0])
    metrics = json.loads((tmp_path / "rm" / CONFIG_FILE).read_text())["metrics"]
    assert acc == pytest.approx(metrics["accuracy"], abs=5e-4) and acc >= 0.85
    by_kind = metrics["accuracy_by_kind"]
    assert set(by_kind) == {"rude", "dismissive", "off_topic", "unsafe", "vague", "wrong_policy"}
    for kind in ("rude", "dismissive", "off_topic", "unsafe", "vague"):
        assert by_kind[kind]["accuracy"] >= 0.9, (kind, by_kind[kind])
        assert f"accuracy[{kind}]" in out

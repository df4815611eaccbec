"""Evaluation (agents.evaluate): summary fields, chunk padding, KL / perplexity against direct computations,
determinism, the ethics filter, the output files and the CLI. Tiny random models only, no network."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import agents.evaluate as ev
import agents.evaluator as evaluator
from dialogue_env.kvcache import position_ids
from dialogue_env.models import load_policy, tiny_model, tiny_tokenizer

SUMMARY_FIELDS = (
    "n", "reward", "reward_std", "reward_ci95", "components", "kl", "perplexity", "distinct_1", "distinct_2",
    "mean_length", "mean_tokens", "ethics_violation_rate", "ethics_violation_rate_before",
    "ethics_violation_rate_after", "n_replaced", "policy", "reference", "dataset", "split", "seed", "greedy",
    "temperature", "max_new_tokens", "seconds",
)
FLOAT_FIELDS = ("reward", "reward_std", "reward_ci95", "kl", "perplexity", "distinct_1", "distinct_2", "mean_length",
                "mean_tokens", "ethics_violation_rate", "ethics_violation_rate_before", "ethics_violation_rate_after",
                "temperature", "seconds")
ROW_FIELDS = ("dialogue_id", "context", "reference", "reply", "reply_raw", "reward", "components", "ethics_unsafe",
              "ethics_reason", "kl", "nll", "n_tokens")
FAST = {"reward": "length", "max_new_tokens": 6, "max_context_tokens": 256, "progress": False}


class Capture:
    """Wraps the collector to keep the rollouts (and optionally overwrite replies after generation)."""

    def __init__(self, edit=None):
        self.calls = []
        self.edit = edit

    def __call__(self, venv, lm, **kwargs):
        rollout = real_generate(venv, lm, **kwargs)
        if self.edit is not None:
            self.edit(rollout, len(self.calls))
        self.calls.append((kwargs, rollout))
        return rollout


real_generate = evaluator.collect


@pytest.fixture(scope="module")
def tiny_run():
    capture = Capture()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluator, "collect", capture)
        summary, rows = ev.evaluate_policy("tiny-random", limit=6, batch_size=4, filter="ethics", **FAST)
    return summary, rows, capture


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    """A valid local model dir: a tiny model with different weights (seed 1) and the tiny tokenizer."""
    path = tmp_path_factory.mktemp("tiny-seed1")
    tok = tiny_tokenizer()
    tiny_model(len(tok), seed=1).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    """A training-checkpoint-like dir: weights + dialogue_rl.json naming the base model, no tokenizer files."""
    path = tmp_path_factory.mktemp("ckpt")
    tiny_model(len(tiny_tokenizer()), seed=1).save_pretrained(path)
    (path / ev.CHECKPOINT_META).write_text(json.dumps({"base_model": "tiny-random", "iteration": 2}))
    return path


def _direct_logprobs(model, rollout, i):
    """log p(reply token t | context, reply[:t]) for sub-env i, from an unpadded full forward (no cache)."""
    ctx = rollout.query_ids[i][rollout.query_mask[i].bool()]
    reply = rollout.response_ids[i][rollout.response_mask[i].bool()]
    seq = torch.cat([ctx, reply]).unsqueeze(0)
    with torch.no_grad():
        logits = model(input_ids=seq).logits[0].float()  # (L, V)
    logp = torch.log_softmax(logits[len(ctx) - 1: -1], dim=-1)
    return logp.gather(-1, reply.unsqueeze(-1)).squeeze(-1)  # (T_i,)


# ------------------------------------------------------------------------------------------------ the summary
def test_summary_has_every_field_with_finite_values(tiny_run):
    summary, rows, _ = tiny_run
    missing = [k for k in SUMMARY_FIELDS if k not in summary]
    assert not missing, missing
    assert summary["n"] == 6 and isinstance(summary["n"], int)
    for k in FLOAT_FIELDS:
        assert isinstance(summary[k], float) and math.isfinite(summary[k]), (k, summary[k])
    assert summary["components"] == {"length": pytest.approx(summary["reward/length"])}
    assert summary["policy"] == summary["reference"] == "tiny-random"
    assert (summary["dataset"], summary["split"], summary["seed"], summary["greedy"]) == (
        "customer_service", "test", 1234, False)
    assert summary["kl"] == 0.0  # the reference is the policy itself
    assert summary["perplexity"] > 1.0
    assert 0.0 <= summary["distinct_1"] <= 1.0 and 0.0 <= summary["distinct_2"] <= 1.0


def test_summary_statistics_follow_the_rows(tiny_run):
    summary, rows, _ = tiny_run
    r = np.array([row["reward"] for row in rows])
    assert summary["reward"] == pytest.approx(r.mean())
    assert summary["reward_std"] == pytest.approx(r.std(ddof=0))
    assert summary["reward_ci95"] == pytest.approx(1.96 * r.std() / math.sqrt(6))
    assert summary["mean_tokens"] == pytest.approx(np.mean([row["n_tokens"] for row in rows]))
    assert summary["mean_length"] == pytest.approx(np.mean([len(row["reply_raw"].split()) for row in rows]))
    nll = sum(row["nll"] * row["n_tokens"] for row in rows) / sum(row["n_tokens"] for row in rows)
    assert summary["perplexity"] == pytest.approx(math.exp(nll), rel=1e-6)
    # the env's own reward: the length penalty of each reply it decoded
    import rewards

    penalty = rewards.make("length")
    assert [row["components"]["length"] for row in rows] == pytest.approx(
        penalty([row["context"] for row in rows], [row["reply_raw"] for row in rows]))


def test_rows_cover_the_first_dialogues_once_each_with_chunk_padding(tiny_run):
    summary, rows, capture = tiny_run
    import dialogue_env

    expected = [d.id for d in dialogue_env.load_dataset("customer_service", "test")[:6]]
    assert len(rows) == 6
    assert [row["dialogue_id"] for row in rows] == expected
    for row in rows:
        assert set(ROW_FIELDS) <= set(row), set(ROW_FIELDS) - set(row)
        assert row["context"] and row["context"][-1]["role"] == "user"
        assert isinstance(row["ethics_unsafe"], bool) and row["n_tokens"] >= 1
        assert row["kl"] == 0.0 and math.isfinite(row["nll"])
    # two chunks of 4 sub-envs; the second is padded by repeating its own dialogues, and the extras are dropped
    assert [list(kw["dialogue_indices"]) for kw, _ in capture.calls] == [[0, 1, 2, 3], [4, 5, 4, 5]]
    assert [ro.response_ids.shape[0] for _, ro in capture.calls] == [4, 4]


# --------------------------------------------------------------------------------------------- KL / perplexity
def test_kl_and_perplexity_against_another_model_match_a_direct_computation(other_model_dir):
    capture = Capture()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluator, "collect", capture)
        summary, rows = ev.evaluate_policy("tiny-random", reference=str(other_model_dir), limit=3, batch_size=2,
                                           **FAST)
    assert summary["reference"] == str(other_model_dir)
    assert summary["kl"] > 0.05
    policy, _ = load_policy("tiny-random")
    ref, _ = load_policy(str(other_model_dir))
    nll_sum, n_tok = 0.0, 0
    k = 0
    for _, rollout in capture.calls:
        for i in range(rollout.response_ids.shape[0]):
            if k == len(rows):
                break  # a padding sub-env
            lp, lr = _direct_logprobs(policy, rollout, i), _direct_logprobs(ref, rollout, i)
            assert rows[k]["n_tokens"] == lp.numel()
            assert rows[k]["kl"] == pytest.approx(float((lp - lr).sum()), rel=1e-4, abs=1e-4)
            assert rows[k]["nll"] == pytest.approx(float(-lr.mean()), rel=1e-4)
            nll_sum += float(-lr.sum())
            n_tok += lr.numel()
            k += 1
    assert k == 3
    assert summary["perplexity"] == pytest.approx(math.exp(nll_sum / n_tok), rel=1e-4)
    assert summary["kl"] == pytest.approx(np.mean([r["kl"] for r in rows]))


def test_perplexity_for_one_dialogue_is_exp_of_its_mean_nll(tiny_run):
    capture = Capture()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluator, "collect", capture)
        summary, rows = ev.evaluate_policy("tiny-random", limit=1, batch_size=1, **FAST)
    policy, _ = load_policy("tiny-random")
    lp = _direct_logprobs(policy, capture.calls[0][1], 0)
    assert summary["perplexity"] == pytest.approx(math.exp(float(-lp.mean())), rel=1e-4)
    assert summary["kl"] == 0.0


def test_checkpoint_dir_uses_its_base_model_as_reference_and_tokenizer(checkpoint_dir):
    assert ev.resolve_reference(str(checkpoint_dir)) == "tiny-random"
    assert ev.resolve_reference("tiny-random") == "tiny-random"
    assert ev.resolve_reference(str(checkpoint_dir), "some/other") == "some/other"
    assert ev._tokenizer_name(str(checkpoint_dir)) == "tiny-random"  # no tokenizer files in the dir
    summary, rows = ev.evaluate_policy(str(checkpoint_dir), limit=2, batch_size=2, **FAST)
    assert summary["reference"] == "tiny-random" and summary["policy"] == str(checkpoint_dir)
    assert summary["kl"] > 0.05 and len(rows) == 2
    # the same checkpoint against itself
    self_summary, _ = ev.evaluate_policy(str(checkpoint_dir), reference=str(checkpoint_dir), limit=2, batch_size=2,
                                         **FAST)
    assert self_summary["kl"] == 0.0


def test_reply_logprobs_keeps_only_reply_logits_and_matches_the_full_forward(tiny_run):
    _, _, capture = tiny_run
    rollout = capture.calls[0][1]
    lm, _ = load_policy("tiny-random")
    shapes = []
    hook = lm.lm_head.register_forward_hook(lambda mod, inp, out: shapes.append(tuple(out.shape)))
    try:
        fast = evaluator.reply_logprobs(lm, rollout)[0]  # (B, T)
    finally:
        hook.remove()
    B, T = rollout.response_ids.shape
    assert fast.shape == (B, T)
    assert shapes == [(B, T, lm.config.vocab_size)]  # no context logits materialised
    ids, mask = rollout.sequence()
    pos = position_ids(mask)
    with torch.no_grad():
        full = lm(input_ids=ids, attention_mask=mask.long(), position_ids=pos).logits  # (B, Lq+T-1, V)
    Lq = rollout.query_ids.shape[1]
    ref = torch.log_softmax(full[:, Lq - 1:].float(), -1).gather(-1, rollout.response_ids.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(fast, ref, atol=1e-5)
    # and each sub-env's reply agrees with an unpadded forward (left padding and positions handled)
    m = rollout.response_mask.bool()
    for i in range(B):
        assert torch.allclose(fast[i][m[i]], _direct_logprobs(lm, rollout, i), atol=1e-4)


# ------------------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_an_identical_summary_and_another_seed_does_not():
    a, rows_a = ev.evaluate_policy("tiny-random", limit=4, batch_size=4, seed=7, **FAST)
    b, rows_b = ev.evaluate_policy("tiny-random", limit=4, batch_size=4, seed=7, **FAST)
    c, rows_c = ev.evaluate_policy("tiny-random", limit=4, batch_size=4, seed=8, **FAST)
    a.pop("seconds"), b.pop("seconds")
    assert a == b and rows_a == rows_b
    assert [r["reply_raw"] for r in rows_c] != [r["reply_raw"] for r in rows_a]


def test_greedy_ignores_the_seed():
    a, rows_a = ev.evaluate_policy("tiny-random", limit=2, batch_size=2, greedy=True, seed=1, **FAST)
    b, rows_b = ev.evaluate_policy("tiny-random", limit=2, batch_size=2, greedy=True, seed=2, **FAST)
    assert [r["reply_raw"] for r in rows_a] == [r["reply_raw"] for r in rows_b]
    assert a["greedy"] is True


# ----------------------------------------------------------------------------------------------- ethics filter
UNSAFE = "Shut up, you idiot."


def test_ethics_filter_replaces_an_unsafe_reply_end_to_end():
    from rewards.filters import DEFAULT_FALLBACK

    def make_first_reply_unsafe(rollout, call):
        if call == 0:
            rollout.responses[0] = UNSAFE

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluator, "collect", Capture(edit=make_first_reply_unsafe))
        summary, rows = ev.evaluate_policy("tiny-random", limit=3, batch_size=2, filter="ethics", **FAST)
    assert rows[0]["reply_raw"] == UNSAFE and rows[0]["reply"] == DEFAULT_FALLBACK
    assert rows[0]["ethics_unsafe"] is True and rows[0]["ethics_reason"].startswith("blocklist")
    assert all(r["reply"] == r["reply_raw"] for r in rows[1:] if not r["ethics_unsafe"])
    assert summary["ethics_violation_rate"] == summary["ethics_violation_rate_before"] >= 1 / 3 - 1e-9
    assert summary["ethics_violation_rate_after"] == 0.0
    assert summary["n_replaced"] == round(3 * summary["ethics_violation_rate_before"])


def _hand_rows(replies):
    ctx = [{"role": "user", "content": "Where is my refund?"}]
    return [{"dialogue_id": f"d{i}", "context": ctx, "reference": None, "reply": t, "reply_raw": t,
             "reward": float(i), "components": {"a": float(i), "b": 1.0}, "ethics_unsafe": False,
             "ethics_reason": None, "kl": 0.5 * i, "nll": 1.0, "n_tokens": 2 + i} for i, t in enumerate(replies)]


def test_apply_ethics_and_summarize_on_hand_built_rows():
    replies = ["Your refund was sent today.", "Please send me your full card number.", "Thanks for waiting!",
               "Stop whining."]
    rows = _hand_rows(replies)
    stats = ev.apply_ethics(rows)  # no filter: judged, nothing replaced
    assert stats == {"ethics_violation_rate": 0.5}
    assert [r["ethics_unsafe"] for r in rows] == [False, True, False, True]
    assert "card number" in rows[1]["ethics_reason"] and [r["reply"] for r in rows] == replies

    stats = ev.apply_ethics(rows, "ethics")
    assert stats["ethics_violation_rate_before"] == 0.5 and stats["ethics_violation_rate_after"] == 0.0
    assert stats["n_replaced"] == 2
    assert rows[0]["reply"] == replies[0] and rows[1]["reply"] != replies[1] and rows[1]["reply_raw"] == replies[1]

    import rewards

    custom = ev.apply_ethics(_hand_rows(replies), rewards.EthicsFilter(fallback="One moment please."))
    assert custom["n_replaced"] == 2
    with pytest.raises(ValueError, match="filter"):
        ev.apply_ethics(_hand_rows(replies), "profanity")

    s = ev.summarize(rows, stats, policy="p")
    assert s["n"] == 4 and s["policy"] == "p"
    assert s["reward"] == 1.5 and s["reward_std"] == pytest.approx(np.std([0, 1, 2, 3]))
    assert s["components"] == {"a": 1.5, "b": 1.0} and s["reward/a"] == 1.5
    assert s["kl"] == pytest.approx(0.75) and s["perplexity"] == pytest.approx(math.e)
    assert s["mean_tokens"] == 3.5 and s["mean_length"] == pytest.approx(np.mean([5, 7, 3, 2]))
    assert s["ethics_violation_rate_after"] == 0.0


def test_distinct_n():
    assert ev.distinct_n(["a b a", "A b"], 1) == pytest.approx(2 / 5)
    assert ev.distinct_n(["a b a", "A b"], 2) == pytest.approx(2 / 3)  # (a b) (b a) (a b)
    assert ev.distinct_n(["", "one"], 2) == 0.0


# ------------------------------------------------------------------------------------------------ output files
def test_write_outputs_is_atomic_and_parses(tiny_run, tmp_path):
    summary, rows, _ = tiny_run
    out = tmp_path / "results" / "deeper" / "eval.json"
    paths = ev.write_outputs(summary, rows, out)
    assert paths == (out, out.with_suffix(".jsonl"))
    assert json.loads(out.read_text()) == json.loads(json.dumps(summary))
    lines = out.with_suffix(".jsonl").read_text().splitlines()
    assert len(lines) == 6
    parsed = [json.loads(line) for line in lines]
    assert [p["dialogue_id"] for p in parsed] == [r["dialogue_id"] for r in rows]
    assert set(ROW_FIELDS) <= set(parsed[0])
    ev.write_outputs({"n": 1}, rows[:1], out)  # overwrite in place
    assert json.loads(out.read_text()) == {"n": 1}
    assert sorted(p.name for p in out.parent.iterdir()) == ["eval.json", "eval.jsonl"]  # no temp files left
    with pytest.raises(ValueError):
        ev.write_outputs(summary, rows, tmp_path / "x.jsonl")


def test_format_table_has_one_column_per_summary(tiny_run):
    summary, _, _ = tiny_run
    other = dict(summary, reward=summary["reward"] + 1, components={"length": -0.1, "sentiment": 0.3})
    table = ev.format_table({"before": summary, "after": other})
    lines = table.splitlines()
    assert lines[0] == "| metric | before | after |"
    assert all(line.count("|") == 4 for line in lines)
    text = "\n".join(lines)
    for label in ("reward (± 95% CI)", "reward/length", "reward/sentiment", "KL to reference", "perplexity",
                  "distinct-1", "distinct-2", "mean length (words)", "ethics violations",
                  "ethics violations after filter"):
        assert label in text, label
    reward_line = next(line for line in lines if line.startswith("| reward ("))
    assert f"{summary['reward']:.3f} ± {summary['reward_ci95']:.3f}" in reward_line
    sentiment_line = next(line for line in lines if line.startswith("| reward/sentiment"))
    assert sentiment_line.split("|")[2].strip() == "–" and "0.300" in sentiment_line


# --------------------------------------------------------------------------------------------------------- CLI
def test_cli_writes_the_summary_and_rows(tmp_path, capsys):
    out = tmp_path / "res" / "eval.json"
    rc = ev.main(["--policy", "tiny-random", "--dataset", "customer_service", "--split", "validation", "--limit", "3",
                  "--batch-size", "2", "--reward", '{"length": 1.0, "repetition": 0.5}', "--filter", "ethics",
                  "--max-new-tokens", "4", "--max-context-tokens", "256", "--seed", "3", "--no-progress",
                  "--out", str(out)])
    assert rc == 0
    summary = json.loads(out.read_text())
    assert summary["n"] == 3 and summary["split"] == "validation" and summary["seed"] == 3
    assert set(summary["components"]) == {"length", "repetition"} and "reward/repetition" in summary
    assert summary["reward_spec"] == {"length": 1.0, "repetition": 0.5}
    assert len(out.with_suffix(".jsonl").read_text().splitlines()) == 3
    printed = capsys.readouterr().out
    assert "| metric | tiny-random |" in printed and str(out) in printed and "ethics violations" in printed


def test_cli_reward_argument_parses_names_and_json():
    assert ev._parse_reward("length") == "length"
    assert ev._parse_reward('{"coherence": 1, "ethics": 1}') == {"coherence": 1, "ethics": 1}
    with pytest.raises(Exception, match="JSON"):
        ev._parse_reward("{not json")


def test_bad_limit_is_rejected():
    with pytest.raises(ValueError, match="limit"):
        ev.evaluate_policy("tiny-random", limit=0, **FAST)


# ------------------------------------------------------------------------------------------- what --policy takes
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real training run of configs/tiny.yaml (two iterations, a checkpoint after each; the older one rotates)."""
    from agents.ppo.config import PPOConfig
    from agents.ppo.trainer import train

    out = tmp_path_factory.mktemp("run")
    cfg = PPOConfig.from_yaml(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml", final_split="",
                              logger="none")
    train(cfg, out, progress_bar=False, log=lambda *a, **k: None)
    return out


def test_cli_evaluates_a_run_directory_and_a_checkpoint_directory(run_dir, tmp_path, capsys):
    newest = sorted((run_dir / "checkpoints").glob("iter-*"))[-1]
    args = ["--split", "validation", "--limit", "2", "--batch-size", "2", "--reward", "length", "--max-new-tokens",
            "4", "--max-context-tokens", "256", "--no-progress"]
    assert ev.main(["--policy", str(run_dir), *args, "--out", str(tmp_path / "run.json")]) == 0
    printed = capsys.readouterr().out
    assert f"using its newest checkpoint {newest}" in printed
    from_run = json.loads((tmp_path / "run.json").read_text())
    assert from_run["policy"] == str(newest) and from_run["reference"] == "tiny-random" and from_run["n"] == 2
    assert ev.main(["--policy", str(newest), *args, "--out", str(tmp_path / "ckpt.json")]) == 0
    from_ckpt = json.loads((tmp_path / "ckpt.json").read_text())
    assert from_ckpt["reward"] == from_run["reward"] and from_ckpt["kl"] == pytest.approx(from_run["kl"])


def test_policy_that_names_nothing_loadable_is_a_clear_error(tmp_path, run_dir):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "fresh" / "checkpoints").mkdir(parents=True)
    cases = {str(tmp_path / "empty"): "neither config.json", str(tmp_path / "notes.txt"): "is a file",
             str(tmp_path / "missing" / "dir"): "no such directory",
             str(tmp_path / "fresh"): "no complete checkpoint"}
    for policy, message in cases.items():
        with pytest.raises(SystemExit) as err:
            ev.main(["--policy", policy, "--out", str(tmp_path / "x.json")])
        assert message in str(err.value) and policy in str(err.value) and "checkpoint directory" in str(err.value)
    assert ev.resolve_policy("tiny-random") == "tiny-random"
    assert ev.resolve_policy("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_a_checkpoint_with_another_vocabulary_than_the_tokenizer_is_a_clear_error(tmp_path):
    """A checkpoint whose output layer does not match the env tokenizer's vocabulary (token ids are actions)."""
    path = tmp_path / "ckpt-300"
    tiny_model(300, seed=1).save_pretrained(path)
    (path / ev.CHECKPOINT_META).write_text(json.dumps({"base_model": "tiny-random"}))
    with pytest.raises(ev.PolicyError, match=r"the policy '.*ckpt-300' has a vocabulary of 300 tokens but the env's "
                                             r"tokenizer \('tiny-random'\) has 259.*tokenizer it was trained with"):
        ev.evaluate_policy(str(path), limit=1, batch_size=1, **FAST)
    with pytest.raises(ev.PolicyError, match=r"the reference '.*ckpt-300' has a vocabulary of 300"):
        ev.evaluate_policy("tiny-random", reference=str(path), limit=1, batch_size=1, **FAST)


def test_cut_off_says_whether_the_reply_reached_max_new_tokens_without_ending(monkeypatch):
    lm, tok = load_policy("tiny-random")
    with torch.no_grad():  # make the end-of-reply token likely enough that the model writes both kinds
        lm.lm_head.weight[tok.eos_token_id] += 0.35 * lm.model.norm.weight
    capture = Capture()
    monkeypatch.setattr(evaluator, "collect", capture)
    summary, rows = ev.evaluate_policy("tiny-random", lm=lm, limit=12, batch_size=12, **FAST)
    (_, rollout), = capture.calls
    for i, row in enumerate(rows):
        n = row["n_tokens"]
        ended = int(rollout.response_ids[i, n - 1]) == tok.eos_token_id  # the model wrote the end-of-reply token
        assert row["cut_off"] is (not ended) and (ended or n == FAST["max_new_tokens"])
    assert {row["cut_off"] for row in rows} == {True, False}
    assert summary["cut_off_rate"] == pytest.approx(sum(row["cut_off"] for row in rows) / 12)
    table = ev.format_table({"before": summary})
    assert f"| cut off at max_new_tokens | {100 * summary['cut_off_rate']:.1f}% |" in table


def test_by_cut_off_splits_the_reward_and_judges_by_finished_and_cut_off_replies():
    rows = [{"reward": r, "cut_off": c, "judges": {"j": -r}} for r, c in [(1.0, False), (3.0, False), (-2.0, True)]]
    assert evaluator.by_cut_off(rows) == {"finished": (2, 2.0), "cut_off": (1, -2.0)}
    assert evaluator.by_cut_off(rows, "j") == {"finished": (2, -2.0), "cut_off": (1, 2.0)}
    assert evaluator.by_cut_off(rows[:2]) == {"finished": (2, 2.0)}  # no cut-off reply: that side is left out
    assert evaluator.by_cut_off([{**rows[0], "cut_off": None}]) is None  # conversations: no such split

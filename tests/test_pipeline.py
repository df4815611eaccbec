"""The seed's RLHF pipeline end to end, through the real `dialogue-rl` command line, on the tiny policy:

preference pairs (labelled in an annotation database, `dialogue-rl annotate export`) -> `reward-model train` ->
`train` (PPO) with the learned reward plus the ethics gate -> `evaluate --filter ethics`.

The same command sequence as the README's "The RLHF pipeline end to end", with small budgets.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from agents.cli import main
from dialogue_env.data import load_preference_dataset, load_preferences, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _rows(prefs):
    return [{"id": p.id, "context": list(p.context), "chosen": p.chosen, "rejected": p.rejected, "meta": p.meta}
            for p in prefs]


def _scalars(tb_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_preferences_to_reward_model_to_ppo_to_filtered_evaluation(tmp_path, capsys):
    from agents.annotate.sources import load_candidates
    from agents.annotate.store import AnnotationStore
    from rewards.learned import LearnedReward, load_reward_model

    # 1. preferences, collected with `dialogue-rl annotate`: a quarter of the shipped training pairs are put in an
    #    annotation database and labelled the way a person would (the page's clicks are tested in a real browser in
    #    tests/test_annotate_browser.py; here the labels go through the same store), then exported; half the shipped
    #    test pairs are the held-out file
    candidates, test_file = tmp_path / "candidates.jsonl", tmp_path / "prefs" / "test.jsonl"
    shipped = load_preference_dataset(split="train")[::4]
    write_jsonl(candidates, _rows(shipped))
    store = AnnotationStore(tmp_path / "labels.sqlite")
    assert store.add_pairs(load_candidates(candidates)) == (100, 0)
    better = {p.rejected: p.chosen for p in shipped}
    while (pair := store.next_pair()) is not None:
        store.record_label(pair.id, "a" if better.get(pair.reply_b) == pair.reply_a else "b", annotator="test")
    train_file = tmp_path / "prefs" / "train.jsonl"
    assert main(["annotate", "export", "--db", str(tmp_path / "labels.sqlite"), "--out", str(train_file)]) == 0
    exported = load_preferences(train_file)
    assert len(exported) == 100 and {(p.chosen, p.rejected) for p in exported} == {(p.chosen, p.rejected)
                                                                                   for p in shipped}
    write_jsonl(test_file, _rows(load_preference_dataset(split="test")[::2]))
    assert len(load_preferences(test_file)) == 40

    # 2. the reward model
    rm = tmp_path / "reward_model"
    assert main(["reward-model", "train", "--data", str(train_file), "--test", str(test_file), "--out", str(rm),
                 "--epochs", "10", "--no-progress"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("held-out pairwise accuracy"))
    accuracy = float(line.split(":")[1].split()[0])
    assert accuracy >= 0.7, line  # 100 pairs are enough to tell rude, dismissive, off-topic and vague replies
    config = json.loads((rm / "reward_model.json").read_text())
    assert config["training"]["n_train"] == 100 and config["metrics"]["n_test"] == 40
    assert (rm / "model.safetensors").is_file() and load_reward_model(rm) is not None

    # 3. PPO on the tiny policy with the learned reward and the ethics gate
    run = tmp_path / "run"
    spec = f"reward={{learned: {{weight: 1.0, path: {rm}}}, ethics: 1.0}}"
    assert main(["train", "--config", str(ROOT / "configs" / "tiny.yaml"), "--out", str(run), "--no-progress",
                 "--set", spec, "total_iterations=2", "logger=tensorboard"]) == 0
    capsys.readouterr()
    assert json.loads((run / "config.json").read_text())["reward"] == {
        "learned": {"weight": 1.0, "path": str(rm)}, "ethics": 1.0}
    scalars = _scalars(run / "tensorboard")
    assert len(scalars["rewards/learned"]) == 2 and len(scalars["rewards/ethics"]) == 2
    assert all(np.isfinite(scalars["rewards/learned"]))
    after = json.loads((run / "eval_after.json").read_text())
    assert set(after["components"]) == {"learned", "ethics"}
    checkpoints = sorted((run / "checkpoints").glob("iter-*"))
    assert checkpoints and checkpoints[-1].name == "iter-000002"

    # 4. evaluate the trained policy with the same reward, and filter unsafe replies
    reward_json = json.dumps({"learned": {"weight": 1.0, "path": str(rm)}, "ethics": 1.0})
    summary_path = tmp_path / "eval" / "eval.json"
    assert main(["evaluate", "--policy", str(checkpoints[-1]), "--filter", "ethics", "--reward", reward_json,
                 "--limit", "6", "--batch-size", "6", "--max-new-tokens", "8", "--no-progress",
                 "--out", str(summary_path)]) == 0
    summary = json.loads(summary_path.read_text())
    assert summary["n"] == 6 and summary["reference"] == "tiny-random"
    for key in ("ethics_violation_rate", "ethics_violation_rate_before", "ethics_violation_rate_after",
                "n_replaced"):
        assert key in summary
    assert summary["ethics_violation_rate_after"] <= summary["ethics_violation_rate_before"]
    assert set(summary["components"]) == {"learned", "ethics"}
    rows = [json.loads(x) for x in summary_path.with_suffix(".jsonl").read_text().splitlines()]
    assert len(rows) == 6 and sum(r["ethics_unsafe"] for r in rows) == round(6 * summary["ethics_violation_rate"])
    # the env scored every reply with this reward model: reward = learned, or for an unsafe reply the gate's floor
    # (learned's lowest value, -5, minus 1); learned = the model's score
    learned = LearnedReward(rm)([r["context"] for r in rows], [r["reply_raw"] for r in rows])
    for row, value in zip(rows, learned):
        assert row["components"]["learned"] == pytest.approx(value, abs=1e-5)
        safe = row["components"]["ethics"] == 1.0
        assert row["reward"] == pytest.approx(row["components"]["learned"] if safe else -6.0, abs=1e-5)

"""Judge rewards: rewards that score the evaluated replies without being optimised (reward-hacking diagnostics), in
`dialogue-rl evaluate --judge` (JSON, rows, table) and in the trainer's evaluations (`judges:`, eval/judge/<name>,
report.md); and the shipped RLHF config, run for two iterations on the tiny model."""

import json
from pathlib import Path

import numpy as np
import pytest

import rewards
from agents.cli import main
from agents.evaluator import apply_judges, judge_specs, make_judges, paired_gain, parse_judge
from agents.ppo.config import PPOConfig
from agents.ppo.trainer import train
from rewards.utils import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _scalars(tb_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_judge_arguments_parse_names_json_and_labels():
    assert parse_judge("coherence") == ("coherence", "coherence")
    assert parse_judge('{"learned": {"path": "runs/rm"}}') == ("learned", {"learned": {"path": "runs/rm"}})
    assert parse_judge('lm={"learned": {"path": "a=b"}}') == ("lm", {"learned": {"path": "a=b"}})
    assert parse_judge('{"coherence": 1, "sentiment": 1}')[0] == "coherence+sentiment"
    assert judge_specs(["length", "warm=sentiment"]) == {"length": "length", "warm": "sentiment"}
    assert judge_specs([{"length": 1.0}]) == {"length": {"length": 1.0}}
    assert judge_specs({"seed": {"coherence": 1.0}}) == {"seed": {"coherence": 1.0}}
    with pytest.raises(ConfigError, match="two judges are named 'length'"):
        judge_specs(["length", "length"])
    with pytest.raises(ConfigError, match="does not parse"):
        parse_judge("{not json")
    with pytest.raises(rewards.UnknownRewardError, match="nope"):
        make_judges(["nope"])


def test_evaluate_reports_judges_in_the_json_the_rows_and_the_table(tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--policy", "tiny-random", "--reward", "length", "--judge", "repetition",
                 "--judge", 'seed={"coherence": 1.0, "sentiment": 1.0}', "--limit", "4", "--batch-size", "4",
                 "--max-new-tokens", "6", "--no-progress", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    summary = json.loads(out.read_text())
    rows = [json.loads(x) for x in out.with_suffix(".jsonl").read_text().splitlines()]
    assert set(summary["judges"]) == {"repetition", "seed"} and set(summary["components"]) == {"length"}
    assert summary["judge_specs"] == {"repetition": "repetition", "seed": {"coherence": 1.0, "sentiment": 1.0}}
    contexts, replies = [r["context"] for r in rows], [r["reply_raw"] for r in rows]
    refs = [r["reference"] for r in rows]
    seed = rewards.make_composite({"coherence": 1.0, "sentiment": 1.0})(contexts, replies, references=refs)
    assert [r["judges"]["seed"] for r in rows] == pytest.approx(list(seed), abs=1e-6)
    j = summary["judges"]["seed"]
    assert j["mean"] == pytest.approx(np.mean(seed), abs=1e-6) and j["std"] == pytest.approx(np.std(seed), abs=1e-6)
    assert summary["judge/seed"] == j["mean"]
    assert "| judge/seed (± 95% CI) |" in table and "| judge/repetition (± 95% CI) |" in table


def test_a_judge_compares_with_the_reference_reply_like_the_env_reward():
    # the env's coherence compares a reply with the dialogue's reference; a coherence judge must do the same,
    # not fall back to the last user turn (which it does when it is given no reference)
    context = [{"role": "user", "content": "My parcel has not arrived and the tracking page is blank."}]
    reference = "I am sorry about that. I have resent your order and it will arrive on Friday."
    rows = [{"context": context, "reference": reference, "reply_raw": reference}]
    apply_judges(rows, make_judges(["coherence"]))
    assert rows[0]["judges"]["coherence"] == pytest.approx(1.0, abs=1e-6)
    assert rewards.make("coherence")([context], [reference])[0] < 0.5  # against the user turn instead


def test_a_bad_judge_is_a_one_line_error_before_any_generation(tmp_path, capsys):
    assert main(["evaluate", "--policy", "tiny-random", "--judge", "{oops", "--out", str(tmp_path / "e.json")]) == 2
    err = capsys.readouterr().err
    assert "dialogue-rl: error: --judge '{oops' does not parse as YAML or JSON" in err
    assert "Traceback" not in err and not (tmp_path / "e.json").exists()


def _read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_paired_gain_is_the_mean_change_in_before_stds_with_a_paired_interval():
    before = [{"dialogue_id": str(i), "reward": v, "judges": {"j": -v}} for i, v in enumerate([0.0, 1.0, 2.0, 3.0])]
    after = [{"dialogue_id": str(i), "reward": v + d, "judges": {"j": -v}}
             for i, (v, d) in enumerate(zip([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 1.0, 2.0]))]
    gain, ci = paired_gain(before, after)
    std = np.std([0.0, 1.0, 2.0, 3.0])
    assert gain == pytest.approx(1.5 / std) and ci == pytest.approx(1.96 * 0.5 / 2 / std)
    assert paired_gain(before, after, "j") == pytest.approx((0.0, 0.0))
    assert paired_gain(before, after[::-1]) is None and paired_gain(before, after[:3]) is None  # not paired
    assert paired_gain(before, after, "missing") is None
    assert paired_gain(before, after, "j") is not None and paired_gain(after, after, "j") is not None
    flat = [{**r, "reward": 1.0} for r in before]
    assert paired_gain(flat, after) is None  # no spread before: no unit to measure in
    for rows, k in ((before, 0.0), (after, 1.0)):
        for r in rows:
            r["components"] = {"part": float(r["dialogue_id"]) + k}
    assert paired_gain(before, after, component="part") == pytest.approx((1.0 / std, 0.0))


def test_the_trainer_logs_judges_and_shows_them_in_the_report(tmp_path):
    cfg = PPOConfig.from_yaml(ROOT / "configs" / "tiny.yaml", judges=["repetition", {"sentiment": 1.0}],
                              eval_every=1, total_iterations=2, eval_limit=4, eval_batch_size=4)
    result = train(cfg, tmp_path / "run", progress_bar=False, log=lambda *a, **k: None)
    before, after = result["summaries"]["before"], result["summaries"]["after"]
    for s in (before, after, result["evals"][0]):
        assert set(s["judges"]) == {"repetition", "sentiment"}
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| judge/sentiment (± 95% CI) |" in report and "judge repetition (not optimised):" in report
    assert "| cut off at max_new_tokens |" in report  # the tiny model's 6-token replies are mostly cut off
    assert "reward of finished / cut-off replies (mean, count): before" in report
    assert "judge sentiment of finished / cut-off replies" in report
    assert len(scalars := _scalars(tmp_path / "run" / "tensorboard")) and len(scalars["charts/cut_off_rate"]) == 2
    scalars = _scalars(tmp_path / "run" / "tensorboard")
    assert len(scalars["eval/judge/sentiment"]) == 1 and len(scalars["final/judge/repetition"]) == 2
    assert json.loads((tmp_path / "run" / "eval_after.json").read_text())["judges"] == after["judges"]


def test_the_rlhf_config_trains_two_iterations_on_the_tiny_model(tmp_path, capsys):
    """configs/demo_rlhf.yaml as shipped, but for the model sizes (the tiny policy, and a tiny LM reward model in
    place of the SmolLM2 one it names)."""
    from rewards.learned import save_reward_model
    from rewards.learned_train import train_lm_reward_model
    from rewards.preferences import load_preference_dataset

    shipped = PPOConfig.from_yaml(ROOT / "configs" / "demo_rlhf.yaml")
    assert set(shipped.reward) == {"learned", "ethics"} and shipped.judges
    rm, cfg = train_lm_reward_model(load_preference_dataset(split="train")[:8],
                                    load_preference_dataset(split="test")[:4], backbone="tiny-random",
                                    num_layers_unfrozen=1, epochs=1, progress=False)
    path = save_reward_model(rm, tmp_path / "rm", cfg)
    reward = {**shipped.reward, "learned": {**shipped.reward["learned"], "path": str(path)}}
    run = tmp_path / "run"
    assert main(["train", "--config", str(ROOT / "configs" / "demo_rlhf.yaml"), "--out", str(run), "--no-progress",
                 "--set", "model=tiny-random", f"reward={json.dumps(reward)}", "max_new_tokens=6",
                 "max_context_tokens=128", "num_envs=8", "num_minibatches=2", "total_iterations=2",
                 "eval_limit=4", "eval_batch_size=4", "time_limit_s=null", "num_layers_unfrozen=1"]) == 0
    capsys.readouterr()
    after = json.loads((run / "eval_after.json").read_text())
    assert set(after["components"]) == {"learned", "ethics"} and set(after["judges"]) == set(shipped.judges)
    assert sorted(p.name for p in (run / "checkpoints").glob("iter-*"))[-1] == "iter-000002"
    rows_before, rows_after = _read_rows(run / "eval_before.jsonl"), _read_rows(run / "eval_after.jsonl")
    report = (run / "report.md").read_text()
    gain, learned = paired_gain(rows_before, rows_after), paired_gain(rows_before, rows_after, component="learned")
    assert f"reward gain: {gain[0]:+.2f} ± {gain[1]:.2f} (95% CI, paired over the 4 dialogues)" in report
    assert (f"each part of the reward (ungated, in standard deviations of its untrained value): learned "
            f"{learned[0]:+.2f} ± {learned[1]:.2f}") in report

"""dialogue-rl compare end to end on the tiny model: every agent trained with the same budget and evaluated on the
same held-out dialogues; the JSONL, Markdown, CSV and JSON outputs parse; the PNGs open with the expected size; a
user's object with SB3's predict appears in the table, from Python and from the command line."""

import csv
import json
import textwrap

import numpy as np
import pytest
from PIL import Image

from agents.cli import main
from agents.compare import COMPONENTS_PNG_SIZE, CURVES_PNG_SIZE, CompareConfig, compare, resolve_agents

TINY = dict(model="tiny-random", reward={"length": 1.0, "repetition": 1.0}, k=10, max_new_tokens=8,
            max_context_tokens=160, eval_limit=4, eval_batch_size=4, temperature=1.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class FirstAction:
    """A user's agent: SB3's predict signature, always the reference's most likely token."""

    observation_kind = "topk"

    def __init__(self):
        self.calls = 0

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        self.calls += 1
        return np.zeros(len(observation["topk_ids"]), dtype=np.int64), state


def test_compare_cli_end_to_end(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_agents.py").write_text(textwrap.dedent("""
        import numpy as np

        class Second:
            def predict(self, observation, state=None, episode_start=None, deterministic=False):
                return np.ones(len(observation), dtype=np.int64), state   # TopKFeatures rows: action 1
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "results"
    config = tmp_path / "compare.yaml"
    config.write_text(textwrap.dedent("""
        model: tiny-random
        reward: {length: 1.0, repetition: 1.0}
        k: 10
        max_new_tokens: 8
        max_context_tokens: 160
        eval_limit: 4
        eval_batch_size: 4
        temperature: 1.0
        sb3:
          ppo: {n_envs: 4, n_steps: 16, batch_size: 32, n_epochs: 2}
          a2c: {n_envs: 4}
          dqn: {n_envs: 4, learning_starts: 32, target_update_interval: 64}
        ppo: {num_envs: 4, num_minibatches: 2, update_epochs: 1}
    """))
    agents = "ppo,sb3-ppo,sb3-a2c,sb3-dqn,sb3-ppo-tokens,reference,random,mine=my_agents:Second"
    budget = 128
    assert main(["compare", "--config", str(config), "--agents", agents, "--seeds", "0,1", "--budget-steps",
                 str(budget), "--out", str(out), "--no-progress"]) == 0
    names = [a.split("=")[0] for a in agents.split(",")]

    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(rows) == len(names) * 2 * 4  # agents x seeds x held-out dialogues
    dialogue_sets = {}
    for row in rows:
        assert row["eval_seed"] not in (0, 1) and row["eval_seed"] == 10_000 + row["seed"]
        assert set(row["components"]) == {"length", "repetition"} and isinstance(row["reply"], str)
        dialogue_sets.setdefault(row["agent"], set()).add(row["dialogue_id"])
    ids = dialogue_sets["ppo"]
    assert len(ids) == 4 and all(s == ids for s in dialogue_sets.values())  # the same held-out dialogues
    assert all(i.startswith("cs-") for i in ids)
    by_agent = {r["agent"]: r for r in rows}
    for name in ("sb3-ppo", "sb3-a2c", "sb3-dqn", "sb3-ppo-tokens"):
        assert budget <= by_agent[name]["train_env_steps"] <= budget + 64  # same env-step budget
        assert by_agent[name]["train_wall_s"] > 0
    assert 0 < by_agent["ppo"]["train_env_steps"] <= 4 * 8 * 4  # whole iterations of num_envs x max_new_tokens
    assert by_agent["random"]["train_env_steps"] == 0 and by_agent["mine"]["kl"] is not None

    with open(out / "summary.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["agent"] for r in table] == names
    for r in table:
        assert int(r["n"]) == 8 and r["seeds"] == "0 1"
        float(r["reward"]), float(r["reward_ci95"]), float(r["length"]), float(r["perplexity"])
    reward_mine = np.mean([x["reward"] for x in rows if x["agent"] == "mine"])
    assert float(next(r for r in table if r["agent"] == "mine")["reward"]) == pytest.approx(reward_mine)

    md = (out / "summary.md").read_text()
    for name in names:
        assert f"| {name} | 8 |" in md
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["budget_steps"] == budget and set(summary["summaries"]) == set(names)
    assert len((out / "curves.jsonl").read_text().splitlines()) > 0

    for png, size in (("curves.png", CURVES_PNG_SIZE), ("components.png", COMPONENTS_PNG_SIZE)):
        with Image.open(out / png) as img:
            img.verify()
        with Image.open(out / png) as img:
            assert img.format == "PNG" and img.size == size
    for name in ("sb3-ppo", "sb3-a2c", "sb3-dqn"):
        assert (out / "agents" / name / "seed-1" / "model.zip").is_file()
    assert "| mine |" in capsys.readouterr().out


def test_user_agent_object_from_python_and_a_saved_sb3_zip(tmp_path):
    from agents.sb3 import train_sb3

    env_kwargs = dict(model="tiny-random", reward=TINY["reward"], k=10, max_new_tokens=8, max_context_tokens=160)
    run = train_sb3("a2c", total_timesteps=32, env_kwargs=env_kwargs, hyperparams={"n_envs": 4}, out=tmp_path / "a2c",
                    progress=False)
    mine = FirstAction()
    logs = []
    result = compare({"mine": mine, "saved": str(run.path), "reference-greedy": "reference-greedy"},
                     out=tmp_path / "r", seeds=[3], budget_steps=64, progress=False, log=logs.append, **TINY)
    # a .zip is a pickle: its loading is announced, naming the file
    warning = f"loading {run.path}: only load .zip agents you trust: loading runs code from the file"
    assert sum(warning in str(line) for line in logs) == 1
    assert mine.calls > 0
    s = result["summaries"]
    assert list(s) == ["mine", "saved", "reference-greedy"]
    # Always action 0 through the TopK env is greedy decoding: the same replies as the greedy reference.
    mine_rows = [r for r in result["rows"] if r["agent"] == "mine"]
    greedy_rows = [r for r in result["rows"] if r["agent"] == "reference-greedy"]
    assert [r["reply"] for r in mine_rows] == [r["reply"] for r in greedy_rows]
    assert s["mine"]["reward"] == pytest.approx(s["reference-greedy"]["reward"])
    assert s["mine"]["kl"] == pytest.approx(s["reference-greedy"]["kl"], rel=1e-3)
    assert "| mine |" in (tmp_path / "r" / "summary.md").read_text()


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="also training seeds"):
        CompareConfig(seeds=[0, 5], eval_seed_offset=5).validate()
    with pytest.raises(ValueError, match="unknown agent 'nope'"):
        resolve_agents("ppo,nope")
    with pytest.raises(ValueError, match="has no predict method"):
        resolve_agents(["x=json:JSONDecoder"])
    with pytest.raises(ValueError, match="no arguments failed"):
        resolve_agents(["x=json:dumps"])
    with pytest.raises(ValueError, match="unknown compare setting"):
        CompareConfig.from_dict({"budget": 10})
    with pytest.raises(ValueError, match="shape"):
        compare({"wrong": _WrongShape()}, out=tmp_path, seeds=[0], progress=False, log=lambda *a: None, **TINY)


class _WrongShape:
    from gymnasium import spaces

    observation_space = spaces.Box(-1, 1, (3,))

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return np.zeros(len(observation), dtype=np.int64), state


def test_multi_turn_compare_with_the_lm_customer_and_best_of_n(tmp_path):
    """The multi-turn setting: ppo trains over whole 3-turn conversations, best-of-n keeps the reward's favourite
    of its samples, and the table reports the per-turn reward and the resolution rate."""
    settings = {**TINY, "reward": {"length": 1.0}, "max_context_tokens": 400}
    result = compare("ppo,best-of-n,reference", out=tmp_path / "mt", seeds=[0], budget_steps=64, progress=False,
                     log=lambda *a: None, turns=3, user_simulator="lm", simulator_model="tiny-random", best_of_n=6,
                     ppo={"max_context_tokens": 400}, **settings)
    s = result["summaries"]
    for name in ("ppo", "best-of-n", "reference"):
        assert 1 < s[name]["turns"] <= 3 and 0 <= s[name]["resolution_rate"] <= 1
        assert np.isfinite(s[name]["turn_reward"])
    assert s["best-of-n"]["turn_reward"] > s["reference"]["turn_reward"]  # length reward: it picks longer replies
    rows = [r for r in result["rows"] if r["agent"] == "best-of-n"]
    assert all(r["outcome"] in ("resolved", "gave_up") for r in rows)
    assert all(r["reward"] == pytest.approx(sum(r["turn_rewards"]) + r["outcome_reward"], abs=1e-5) for r in rows)
    table = (tmp_path / "mt" / "summary.md").read_text()
    assert "turn reward" in table and "resolution rate" in table and "| best-of-n |" in table

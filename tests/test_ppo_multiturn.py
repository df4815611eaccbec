"""PPO over whole conversations: interleaved multi-turn rollouts, masking of the simulator's tokens, per-turn
rewards and GAE across turns."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents.ppo.functional as ppo_f
import agents.ppo.trainer as trainer
import dialogue_env  # noqa: F401
from agents.collect import collect
from agents.ppo.checkpoint import read_trainer_state
from agents.ppo.config import PPOConfig
from agents.ppo.multiturn import conversation_trunk, shaped_rewards
from agents.ppo.trainer import latest_checkpoint, train
from dialogue_env.models import load_policy

ENV = dict(model="tiny-random", reward="length", max_context_tokens=512, max_new_tokens=5, device="cpu")


@pytest.fixture(scope="module")
def rollout():
    lm = load_policy("tiny-random")[0]
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=4, vectorization_mode="vector_entry_point", turns=3,
                        user_simulator="lm", simulator_model="tiny-random", return_tensors=True, **ENV)
    return collect(venv, lm, generator=torch.Generator().manual_seed(0), seed=0), venv


def test_multi_turn_rollout_is_the_token_stream_with_an_agent_mask(rollout):
    ro, venv = rollout
    assert ro.interleaved and ro.response_ids.shape == ro.response_mask.shape == ro.token_scores.shape
    tok = venv.unwrapped.tokenizer
    ids, mask = ro.sequence()
    for i, turns in enumerate(ro.turns):
        agent = ro.response_mask[i].bool()
        assert len(turns) <= int(agent.sum()) <= 5 * len(turns)  # 1 to max_new_tokens tokens per reply
        ends = agent & ~torch.cat([agent[1:], torch.zeros(1, dtype=torch.bool)])  # last token of each reply
        assert int(ends.sum()) == len(turns)
        torch.testing.assert_close(ro.token_scores[i][ends], torch.tensor([rec["reward"] for rec in turns]))
        # each reply's reward sits on its last token; they add up to the episode's return
        assert float(ro.token_scores[i].sum()) == pytest.approx(ro.scores[i], abs=1e-5)
        assert torch.count_nonzero(ro.token_scores[i][~agent]) == 0
        if len(turns) > 1:  # the customer's message is in the stream, as context (mask 0)
            text = tok.decode(ids[i][mask[i].bool()])
            assert turns[1]["context"][-1]["content"] in text
            assert not agent[: int(agent.nonzero()[-1])].all()


def test_shaped_rewards_put_turn_scores_on_reply_ends_and_nothing_on_simulator_tokens(rollout):
    ro, _ = rollout
    mask = ro.response_mask.bool()
    kl = torch.rand(mask.shape, generator=torch.Generator().manual_seed(1))  # KL everywhere, even off the agent
    scores = torch.as_tensor(ro.scores, dtype=torch.float32)
    r = shaped_rewards(ro, scores, kl, mask, 0.1)
    assert torch.count_nonzero(r[~mask]) == 0
    torch.testing.assert_close(r.sum(1), scores - 0.1 * (kl * mask).sum(1))
    baselined = scores - 0.5
    torch.testing.assert_close(shaped_rewards(ro, baselined, kl, mask, 0.1).sum(1),
                               baselined - 0.1 * (kl * mask).sum(1))


def test_gae_runs_over_the_agent_tokens_across_turns(rollout):
    ro, _ = rollout
    mask = ro.response_mask.bool()
    g = torch.Generator().manual_seed(2)
    rewards, values = torch.randn(mask.shape, generator=g), torch.randn(mask.shape, generator=g)
    adv, ret = ppo_f.gae(rewards, values, mask, 0.9, 0.8)
    for i in range(len(mask)):  # the same as GAE on the agent's tokens alone, back to back
        a, r = ppo_f.gae(rewards[i][mask[i]][None], values[i][mask[i]][None], torch.ones(1, int(mask[i].sum())),
                         0.9, 0.8)
        torch.testing.assert_close(adv[i][mask[i]], a[0])
        torch.testing.assert_close(ret[i][mask[i]], r[0])
        assert torch.count_nonzero(adv[i][~mask[i]]) == 0


def _three_turn_iteration(tmp_path, monkeypatch, perturb):
    """One 3-turn PPO iteration on the tiny model; ``perturb`` changes the rollout's target tokens after the trunk
    has read the true conversation: "simulator" replaces every token the agent did not write, "agent" the agent's."""
    seen = {}

    def trunk_then_perturb(policy, ro):
        h = conversation_trunk(policy, ro)
        agent = ro.response_mask.bool()
        seen["simulator_tokens"] = int((~agent[:, : int(agent.nonzero()[:, 1].max())]).sum())
        if perturb:
            shifted = (ro.response_ids + 17) % 250 + 3
            ro.response_ids = torch.where(agent if perturb == "agent" else ~agent, shifted, ro.response_ids)
        return h

    monkeypatch.setattr(trainer, "conversation_trunk", trunk_then_perturb)
    cfg = PPOConfig(model="tiny-random", reward="length", max_new_tokens=5, max_context_tokens=512, num_envs=4,
                    num_minibatches=2, update_epochs=2, total_iterations=1, learning_rate=1e-2, temperature=1.0,
                    num_layers_unfrozen=1, final_split=None, checkpoint_every=1, logger="none", turns=3,
                    user_simulator="lm", simulator_model="tiny-random", kl_coef=0.5)
    result = train(cfg, tmp_path / str(perturb), progress_bar=False, log=lambda *a: None)
    assert seen["simulator_tokens"] > 0  # the conversations really had customer turns inside them
    return result, read_trainer_state(latest_checkpoint(tmp_path / str(perturb)))["trainable"]


def test_three_turn_ppo_iteration_masks_the_simulator_tokens(tmp_path, monkeypatch, one_thread):
    """If the simulator's tokens entered the policy loss, the KL penalty, the entropy or the ratios, replacing them
    (as targets; the model still reads the true conversation) would change the update. It must not."""
    base, params = _three_turn_iteration(tmp_path, monkeypatch, None)
    h = base["history"][0]
    assert np.isfinite(h["losses/pg_loss"]) and "rewards/resolution_rate" in h and "rewards/turn_mean" in h
    assert h["rewards/turns_per_episode"] > 1
    _, same = _three_turn_iteration(tmp_path, monkeypatch, "simulator")
    for key in params:
        torch.testing.assert_close(same[key], params[key], rtol=0, atol=0)
    _, changed = _three_turn_iteration(tmp_path, monkeypatch, "agent")  # the test can tell: agent tokens matter
    assert any(not torch.equal(changed[k], params[k]) for k in params)


def test_best_of_n_plays_the_candidate_the_reward_prefers(one_thread):
    from agents.best_of_n import BestOfN

    lm = load_policy("tiny-random")[0]
    venv = gym.make_vec("dialogue_env/Dialogue-v0", num_envs=4, vectorization_mode="vector_entry_point", turns=2,
                        **{**ENV, "max_new_tokens": 8})
    chosen = []
    reward = venv.unwrapped.reward_module
    real_score = reward.score

    def spy(contexts, responses, references=None, **kw):  # the runner's candidate batches are 5 per context
        result = real_score(contexts, responses, references=references, **kw)
        if len(responses) % 5 == 0 and len(responses) > 4:
            chosen.append(np.asarray(result.total).reshape(-1, 5).max(1))
        return result

    reward.score = spy
    ro = collect(venv, BestOfN(lm, n=5, temperature=1.0), seed=0, dialogue_indices=[0, 1, 2, 3],
                 generator=torch.Generator().manual_seed(0))
    reward.score = real_score
    assert ro.interleaved and ro.logprobs is None
    best = sorted(float(x) for batch in chosen for x in batch)
    played = sorted(float(rec["turn_reward"]) for t in ro.turns for rec in t)
    assert played == pytest.approx(best)  # every reply the env scored is its turn's best candidate
    plain = collect(venv, lm, seed=0, dialogue_indices=[0, 1, 2, 3], generator=torch.Generator().manual_seed(0))
    assert np.mean(played) > np.mean([rec["turn_reward"] for t in plain.turns for rec in t])

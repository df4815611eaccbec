"""Compare agents on the same dialogue MDP, reward and budget: ``dialogue-rl compare``.

Every agent faces the same task: write the support agent's reply, token by token, to customer-service dialogues,
scored by the same reward module. Each trainable agent gets the same budget of env steps (``budget_steps``, and
optionally ``budget_seconds`` of wall time) on the train split, once per training seed; then every agent writes one
reply to each of the same held-out dialogues (the test split, or an evenly spaced subset of ``eval_limit``), with
evaluation seeds ``eval_seed_offset + seed`` that are checked to be disjoint from the training seeds.

Built-in agents:

======================  ============================================================================================
``ppo``                 our token-level PPO (``agents/ppo``) on ``Dialogue-v0``, full vocabulary, KL-shaped towards
                        the reference; evaluated by sampling at ``temperature``.
``sb3-ppo``/``-a2c``    Stable-Baselines3 PPO, A2C, DQN (``agents/sb3``) on ``DialogueTopK-v0`` + ``TopKFeatures``
``sb3-dqn``             (k actions = the reference's k most likely tokens), ``MlpPolicy``; saved as ``.zip``.
``sb3-ppo-tokens``      SB3 PPO with ``MultiInputPolicy`` on ``Dialogue-v0`` itself (token ids in, Discrete(V) out).
``reference``           the reference LM, zero-shot, sampling at ``temperature`` (the PPO agent's starting point).
``reference-greedy``    the reference LM, greedy.
``random``              uniform over the k actions of ``DialogueTopK-v0``.
======================  ============================================================================================

Your own agent: any object with SB3's ``predict(observation, state=None, episode_start=None, deterministic=False)``
(an SB3 model, or your class), passed as ``compare(agents={"mine": obj, "ppo": "ppo", ...})`` or on the command line
as ``--agents ppo,mine=my_package.my_module:my_agent`` (an object, or a class / factory called with no arguments)
or ``mine=path/to/model.zip`` (an SB3 model saved by ``agents.sb3``). It is evaluated as given (not trained). It
reads ``TopKFeatures`` vectors unless it says otherwise with ``observation_kind = "topk"`` (the TopK dict) or
``"tokens"`` (Dialogue-v0); an ``observation_space`` attribute (SB3 models have one) is used the same way and
checked against the env's. ``predict`` receives batches (the leading axis is the env), as with an SB3 ``VecEnv``.

Metrics (per reply, then pooled over seeds and dialogues; the CI is ``1.96 * std / sqrt(n)`` over replies):
reward and each component (unweighted) as the env reports them; ``KL`` = ``sum_t log pi_act(a_t|s_t) - log
pi_ref(a_t|s_t)`` over the reply's tokens, where ``pi_act`` is the distribution the agent actually sampled from
(temperature-scaled for LM agents, a point mass (log-prob 0) for greedy / deterministic agents), so it is a Monte
Carlo estimate of KL(pi_act || pi_ref) per reply; an agent that is stochastic and gives no
``action_log_prob(observation, actions, deterministic)`` gets no KL ("–"). ``perplexity`` of the replies under
the reference; distinct-1/2; the ethics violation rate (the built-in ethics judge). Costs: training env steps and
wall time (and their ratio), evaluation env steps per second.

Outputs in ``out``: ``episodes.jsonl`` (one row per evaluation episode), ``summary.md``, ``summary.csv``,
``summary.json``, ``curves.jsonl`` (training episode rewards against env steps and wall time), ``curves.png``
(reward vs env steps and vs wall time per agent) and ``components.png`` (final reward components per agent), and
the trained agents under ``agents/<name>/seed-<s>/``.

The package: ``config`` (``CompareConfig``), ``roster`` (the built-in agents as a table of name -> spec, and user
agents), ``evaluation`` (every agent through the one evaluator), ``report`` (tables, CSV, plots), ``run``
(``compare()``), ``cli`` (``dialogue-rl compare``).
"""

from .cli import build_parser, main
from .config import COMPONENTS_PNG_SIZE, CURVES_PNG_SIZE, DEFAULT_AGENTS, CompareConfig
from .report import csv_text, markdown_table, summarize_agent
from .roster import BUILTIN_AGENTS, BUILTINS, AgentSpec, observation_kind, resolve_agents
from .run import compare

__all__ = ["BUILTINS", "BUILTIN_AGENTS", "COMPONENTS_PNG_SIZE", "CURVES_PNG_SIZE", "DEFAULT_AGENTS", "AgentSpec",
           "CompareConfig", "build_parser", "compare", "csv_text", "main", "markdown_table", "observation_kind",
           "resolve_agents", "summarize_agent"]

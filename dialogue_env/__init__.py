"""A Gymnasium for RLHF on dialogue. Importing this package registers the environments:

- ``dialogue_env/Dialogue-v0``: token-level MDP (action = next token id), with a batched twin for
  ``gym.make_vec(..., vectorization_mode="vector_entry_point")``.
- ``dialogue_env/DialogueTopK-v0``: the same MDP with ``Discrete(k)`` actions, the reference LM's k most likely
  next tokens (``help(dialogue_env.topk.DialogueTopKEnv)``); ``dialogue_env.wrappers.TopKFeatures`` gives SB3 a
  flat float observation.
- ``dialogue_env/DialogueUtterance-v0``: utterance-level MDP (action = the whole reply as text, observation = the
  conversation as text), with a batched twin; ``user_simulator="lm"`` lets a local LM play the customer
  (``help(dialogue_env.utterance.DialogueUtteranceEnv)``, ``dialogue_env.simulators``).

See ``help(dialogue_env.envs.DialogueEnv)`` for the full manual.
"""

from gymnasium.envs.registration import register, registry

from .data import DatasetError, Dialogue, Preference, load_dataset, load_dialogues, load_preferences
from .models import SMOLLM2_NAMES, TINY_NAMES, ModelNotAvailableError, load_policy, load_tokenizer

__version__ = "0.1.0"

ENV_IDS = ("dialogue_env/Dialogue-v0", "dialogue_env/DialogueTopK-v0", "dialogue_env/DialogueUtterance-v0")

if "dialogue_env/Dialogue-v0" not in registry:
    register(
        id="dialogue_env/Dialogue-v0",
        entry_point="dialogue_env.envs:DialogueEnv",
        vector_entry_point="dialogue_env.envs:DialogueVectorEnv",
    )

if "dialogue_env/DialogueTopK-v0" not in registry:
    register(
        id="dialogue_env/DialogueTopK-v0",
        entry_point="dialogue_env.topk:DialogueTopKEnv",
        vector_entry_point="dialogue_env.topk:DialogueTopKVectorEnv",
    )

if "dialogue_env/DialogueUtterance-v0" not in registry:
    register(
        id="dialogue_env/DialogueUtterance-v0",
        entry_point="dialogue_env.utterance:DialogueUtteranceEnv",
        vector_entry_point="dialogue_env.utterance:DialogueUtteranceVectorEnv",
    )

# The built-in models as backbones of the LM reward model (`learned` with kind "lm"; rewards cannot import us).
from rewards.learned_lm import register_lm_backbone  # noqa: E402

register_lm_backbone(SMOLLM2_NAMES + TINY_NAMES, load_policy)

__all__ = [
    "ENV_IDS", "DatasetError", "Dialogue", "ModelNotAvailableError", "Preference", "load_dataset",
    "load_dialogues", "load_policy", "load_preferences", "load_tokenizer",
]

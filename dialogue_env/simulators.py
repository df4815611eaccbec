"""User simulators for multi-turn episodes, and the language-model customer (``user_simulator="lm"``).

A simulator writes the customer's next message after each agent reply. Three kinds exist:

- ``"replay"``: the dataset's own next user turn (no outcome);
- a callable ``(history) -> str | None``: ``None`` ends the conversation (no outcome);
- :class:`LMCustomer` (``user_simulator="lm"``): a local causal LM plays the customer from the dialogue's intent,
  persona and goal, and ends the conversation with an explicit outcome, ``"resolved"`` or ``"gave_up"``.

After every agent reply (the last one included) the customer first gives its **verdict**: the LM is asked
:data:`VERDICT_PROMPT` (the customer's request, what a good answer says, the agent's reply: "does this reply solve the
problem? yes or no") and the next-token probabilities of yes and no give ``p = P(yes) / (P(yes) + P(no))``; the
conversation ends ``"resolved"`` with probability ``p`` (drawn from the conversation's generator). A small model
such as SmolLM2-135M does not reliably write an end marker on its own, but it can answer a yes/no question; the
verdict makes the outcome explicit whatever the model. Otherwise, before the last turn, the customer writes its next
message: the LM sees the conversation with the roles swapped (the agent's replies are its "user" turns, its own
messages its "assistant" turns) under a system prompt built from :data:`CUSTOMER_PROMPT` and :data:`PERSONAS`, which
also asks it to end with ``[RESOLVED]`` or ``[GAVE UP]`` when it is done: :func:`parse_outcome` reads such a marker
(case, spacing, brackets and a few wordings are tolerated; the last marker wins) and ends the conversation with it.
After the episode's last agent reply, no resolution means ``"gave_up"`` (the turn limit). All prompt text lives in
this module's constants.

Sampling is batched over every conversation that needs a message on a step (one KV-cached decode through
:class:`dialogue_env.kvcache.CachedDecoder`), and each conversation draws from its own ``torch.Generator``, seeded
when its episode starts, so an episode's customer messages depend only on its seed and the agent's replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from .kvcache import CachedDecoder, sample_replies

RESOLVED, GAVE_UP = "resolved", "gave_up"
OUTCOMES = (RESOLVED, GAVE_UP)

# ----------------------------------------------------------------------------------------------------- prompts
PERSONAS = {
    "calm": "You are calm and polite, and you write in full sentences.",
    "confused": "You are confused and not good with technology; you ask for things to be explained simply.",
    "frustrated": "You are frustrated and impatient because the problem has already cost you time.",
    "rude": "You are rude and curt; you complain and expect the agent to fix things at once.",
}
"""Persona -> how the customer behaves. A dialogue without a known persona gets ``calm``."""

CUSTOMER_PROMPT = (
    "You are role-playing a customer writing to a company's support chat. {persona}\n"
    "Your topic: {intent}.\n"
    "Why you came: {request}\n"
    "{answer}"
    "Read the support agent's last reply and write the customer's next short message (one or two sentences), in "
    "the first person. If the agent has solved your problem, thank them and end the message with [RESOLVED]. If the "
    "agent is unhelpful, off-topic or rude and you want to stop, end the message with [GAVE UP]. Otherwise ask what "
    "you still need to know, without a marker."
)
"""The customer LM's system prompt; ``{answer}`` is :data:`ANSWER_HINT` filled in, or empty."""

ANSWER_HINT = "Your problem is solved when the agent tells you, in substance: {reference}\n"
"""What a good answer contains (the dataset's reference reply), so the customer can judge the agent."""

VERDICT_PROMPT = (
    "A customer wrote to a support chat: {request}\n"
    "{answer}"
    "The support agent's latest reply: {reply}\n"
    "Does this reply solve the customer's problem? Answer yes or no."
)
"""The customer's verdict after each agent reply (asked as a user turn; ``{answer}`` is :data:`VERDICT_HINT`)."""

VERDICT_HINT = "A good answer says, in substance: {reference}\n"
VERDICT_YES, VERDICT_NO = ("Yes", "yes", " Yes", " yes", "YES"), ("No", "no", " No", " no", "NO")
"""Words whose first tokens count as a yes / a no in the verdict's next-token distribution."""

_RESOLVED_RE = re.compile(r"[\[\(<{]\s*(?:resolved|solved|issue\s+resolved)\s*[\]\)>}]", re.IGNORECASE)
_GAVE_UP_RE = re.compile(r"[\[\(<{]\s*(?:gave|give|giving)[\s_-]*up\s*[\]\)>}]", re.IGNORECASE)


def parse_outcome(text: str) -> tuple[str, str | None]:
    """``(message without markers, outcome)`` where outcome is ``"resolved"``, ``"gave_up"`` or None (no marker).
    Brackets may be ``[]``, ``()``, ``<>`` or ``{}``; case and inner spacing are free (``[Gave up]``, ``(RESOLVED)``,
    ``[give-up]``); when both appear, the later one wins."""
    last: tuple[int, str] | None = None
    for regex, outcome in ((_RESOLVED_RE, RESOLVED), (_GAVE_UP_RE, GAVE_UP)):
        for m in regex.finditer(text):
            if last is None or m.start() > last[0]:
                last = (m.start(), outcome)
    clean = _GAVE_UP_RE.sub("", _RESOLVED_RE.sub("", text))
    clean = re.sub(r"\s+", " ", clean).strip()
    return clean, (last[1] if last else None)


def customer_goal(dialogue) -> dict:
    """What the simulated customer wants, from the dataset fields: ``intent`` (the dialogue's intent, readable),
    ``persona`` (one of :data:`PERSONAS`), ``request`` (the customer's first message: the fact or action they came
    for) and ``reference`` (the dataset's first agent reply: what a good answer says). ``dialogue.meta["goal"]``
    overrides ``request`` when a dataset states the goal explicitly."""
    turns = list(dialogue.turns)
    first_user = next((m["content"] for m in turns if m["role"] == "user"), "")
    reference = next((m["content"] for m in turns if m["role"] == "assistant"), None) or dialogue.reference
    persona = dialogue.persona if dialogue.persona in PERSONAS else "calm"
    meta = dialogue.meta or {}
    return {"intent": (dialogue.intent or "general enquiry").replace("_", " "), "persona": persona,
            "request": str(meta.get("goal") or first_user), "reference": reference}


def customer_system_prompt(goal: dict) -> str:
    """The customer LM's system prompt for one dialogue (``goal`` from :func:`customer_goal`)."""
    answer = ANSWER_HINT.format(reference=goal["reference"]) if goal.get("reference") else ""
    return CUSTOMER_PROMPT.format(persona=PERSONAS[goal["persona"]], intent=goal["intent"], request=goal["request"],
                                  answer=answer)


def customer_view(system_prompt: str, history: list) -> list:
    """The conversation as the customer LM sees it: its system prompt, then the roles swapped (the agent is its
    "user", its own earlier messages are its "assistant" turns). ``history`` ends with the agent's reply."""
    swap = {"user": "assistant", "assistant": "user"}
    return [{"role": "system", "content": system_prompt}] + [
        {"role": swap.get(m["role"], m["role"]), "content": m["content"]} for m in history if m["role"] in swap]


# ------------------------------------------------------------------------------------------------------- the LM
@dataclass
class CustomerTurn:
    """The simulator's answer to one agent reply: the customer's message (markers removed; None if the
    conversation is over) and the outcome (None: it goes on)."""

    message: str | None
    outcome: str | None
    raw: str = ""
    p_resolved: float = 0.0  # the verdict's P(yes) / (P(yes) + P(no))


class LMCustomer:
    """A causal LM playing the customer (``user_simulator="lm"``); see the module docstring.

    Args:
        model: a model name for :func:`dialogue_env.models.load_policy` ("smollm2-135m", "tiny-random", a hub id or
            a local path), or a ``(model, tokenizer)`` pair already loaded.
        max_new_tokens: longest customer message, in tokens.
        temperature: sampling temperature (> 0); ``greedy=True`` takes the argmax instead.
        device: where the LM runs.
    """

    def __init__(self, model="smollm2-135m", *, max_new_tokens: int = 40, temperature: float = 0.7,
                 greedy: bool = False, device="cpu"):
        if isinstance(model, str):
            from .models import load_policy

            self.lm, self.tok = load_policy(model, device=device)
            self.name = model
        else:
            self.lm, self.tok = model
            self.name = type(self.lm).__name__
        if temperature <= 0 and not greedy:
            raise ValueError(f"LMCustomer temperature={temperature} must be > 0 (or greedy=True)")
        self.max_new_tokens, self.temperature, self.greedy = int(max_new_tokens), float(temperature), bool(greedy)
        self.device = next(self.lm.parameters()).device
        eos = {self.tok.eos_token_id}
        for special in ("<|im_end|>", "<|endoftext|>", "</s>"):
            if special in self.tok.get_vocab():
                eos.add(self.tok.convert_tokens_to_ids(special))
        self.eos = torch.tensor(sorted(i for i in eos if i is not None), device=self.device)
        self.yes_ids, self.no_ids = (sorted({self.tok(w, add_special_tokens=False)["input_ids"][0] for w in words})
                                     for words in (VERDICT_YES, VERDICT_NO))

    def __repr__(self) -> str:
        return f"LMCustomer({self.name!r}, temperature={self.temperature}, greedy={self.greedy})"

    @torch.no_grad()
    def verdict(self, histories, goals) -> np.ndarray:
        """``p = P(yes) / (P(yes) + P(no))`` (M,) of :data:`VERDICT_PROMPT` for each conversation's last agent
        reply, from one batched forward."""
        prompts = []
        for g, h in zip(goals, histories):
            hint = VERDICT_HINT.format(reference=g["reference"]) if g.get("reference") else ""
            question = VERDICT_PROMPT.format(request=g["request"], answer=hint, reply=h[-1]["content"] or "(empty)")
            prompts.append(self.tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                                        add_generation_prompt=True))
        enc = self.tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
        logits, _ = CachedDecoder(self.lm, len(prompts)).prefill(np.arange(len(prompts)), enc["input_ids"],
                                                                  enc["attention_mask"])
        probs = torch.softmax(logits.float().cpu(), dim=-1)  # (M, V)
        yes, no = probs[:, self.yes_ids].sum(1), probs[:, self.no_ids].sum(1)
        return (yes / (yes + no).clamp(min=1e-12)).numpy()

    @torch.no_grad()
    def respond(self, histories, goals, last_turn, generators) -> list[CustomerTurn]:
        """The customer's answer to the last agent reply of each conversation, in one batched decode.

        ``histories``: chat histories ending with the agent's reply; ``goals``: :func:`customer_goal` dicts;
        ``last_turn``: bools, True where that reply was the episode's last (no ``[RESOLVED]`` then means
        ``"gave_up"``); ``generators``: one ``torch.Generator`` per conversation (its own random stream). The LM's
        weights are the only state, so envs may share one ``LMCustomer``."""
        if not len(histories):
            return []
        p_yes = self.verdict(histories, goals)
        turns: list = [None] * len(histories)
        for j, p in enumerate(p_yes):
            if float(torch.rand((), generator=generators[j])) < p:
                turns[j] = CustomerTurn(message=None, outcome=RESOLVED, raw="", p_resolved=float(p))
            elif last_turn[j]:  # the turn limit: the customer leaves without saying it is resolved
                turns[j] = CustomerTurn(message=None, outcome=GAVE_UP, raw="", p_resolved=float(p))
        open_rows = [j for j, t in enumerate(turns) if t is None]
        for j, raw in zip(open_rows, self._write([histories[j] for j in open_rows], [goals[j] for j in open_rows],
                                                 [generators[j] for j in open_rows])):
            message, outcome = parse_outcome(raw)
            if outcome is None and not message:
                message = "Sorry, I don't understand. Can you explain?"  # an empty customer turn would break templates
            turns[j] = CustomerTurn(message=None if outcome else message, outcome=outcome, raw=raw,
                                    p_resolved=float(p_yes[j]))
        return turns

    def _write(self, histories, goals, generators) -> list[str]:
        """The customer's next message for each conversation (raw, markers included), sampled in one batched
        KV-cached decode, each row from its own generator."""
        if not histories:
            return []
        prompts = [self.tok.apply_chat_template(customer_view(customer_system_prompt(g), h), tokenize=False,
                                                add_generation_prompt=True) for g, h in zip(goals, histories)]
        enc = self.tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
        out = sample_replies(self.lm, enc["input_ids"], enc["attention_mask"], max_new_tokens=self.max_new_tokens,
                             eos_ids=self.eos.tolist(), generators=generators, temperature=self.temperature,
                             greedy=self.greedy)
        return [self.tok.decode(tokens, skip_special_tokens=True).strip() for tokens in out]


__all__ = ["ANSWER_HINT", "CUSTOMER_PROMPT", "VERDICT_HINT", "VERDICT_PROMPT", "GAVE_UP", "OUTCOMES", "PERSONAS", "RESOLVED", "CustomerTurn",
           "LMCustomer", "customer_goal", "customer_system_prompt", "customer_view", "parse_outcome"]

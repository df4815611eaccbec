"""``coherence``: lexical overlap (BLEU + ROUGE-L) of the reply with the reference reply or the previous turn."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Context, check_references, last_turn
from .textmetrics import rouge_l_f1, rouge_l_f1_chars, sentence_bleu, sentence_bleu_zh

__all__ = ["CoherenceReward", "brevity_penalty", "ends_sentence"]

SENTENCE_END = ".!?\u2026\u3002\uff01\uff1f"  # . ! ? ... and the full-width 。！？
_CLOSERS = "\"')]}*\u201d\u2019\u300d\u300f\uff09"  # quotes, brackets, markdown emphasis after the full stop


def _length(text: str, language: str) -> int:
    return len("".join(text.split())) if language == "zh" else len(text.split())


def brevity_penalty(reply: str, target: str, language: str = "en") -> float:
    """BLEU's brevity penalty of ``reply`` against ``target``: 1 when the reply is at least as long, else
    ``exp(1 - len(target) / len(reply))`` (0 for an empty reply); lengths in words, in characters for ``"zh"``."""
    n, m = _length(reply, language), _length(target, language)
    if n >= m:
        return 1.0
    return 0.0 if n == 0 else float(math.exp(1.0 - m / n))


def ends_sentence(text: str) -> bool:
    """Does ``text`` end a sentence: its last character, after trailing spaces and closing quotes/brackets, one of
    ``. ! ? …`` or the full-width ``。！？``. A reply cut off at the token limit ("... you can choose to return
    your") does not; "Thanks!" and "It ships on Friday (by courier)." do."""
    return text.rstrip().rstrip(_CLOSERS).rstrip()[-1:] in tuple(SENTENCE_END)


class CoherenceReward:
    """Coherence of a reply with what it should say.

    Target ``t_i``: the dataset's reference reply ``references[i]`` when given (not None / not empty), else
    the last user turn of ``contexts[i]`` (else the last non-system turn); no target -> 0.0.

    Defaults: in English (``language="en"``) the embedding similarity, with no credit for an unfinished reply and
    the brevity penalty (``method="embedding", unfinished=0, brevity=True``): the seed's coherence that, optimised,
    also raises what a preference reward model prefers (measured: README, "Reward hacking"); in Chinese the
    character-level lexical score without either factor (``method="lexical", unfinished=1, brevity=False``;
    measured in rewards/README.md, "Chinese"). Before 2026-11-30 the English default was
    ``method="lexical", unfinished=1, brevity=False``; pass those to score as then.

    ``method="lexical"``::

        r = w * BLEU(reply, t) / 100 + (1 - w) * ROUGE-L_F1(reply, t),   w = bleu_weight = 0.5

    with sacrebleu's sentence BLEU (13a tokens, exp smoothing, effective order) and rouge-score's ROUGE-L
    F1 (no stemming); both are in [0, 1] after scaling, so ``r`` is in [0, 1] and a reply equal to the
    reference scores exactly 1.0. ``impl="fast"`` (default) uses :mod:`rewards.textmetrics`, which gives
    the same numbers as the libraries (tested) ~10x faster; ``impl="reference"`` calls sacrebleu and
    rouge-score themselves.

    ``language="zh"`` (Chinese, chosen by a dataset whose ``dataset.json`` says so): BLEU with sacrebleu's ``zh``
    tokenisation (each CJK character a token) and character-level ROUGE-L (:func:`rewards.textmetrics.
    rouge_l_f1_chars`); English word tokens would make a whole Chinese clause one token. ``impl`` does not apply.

    ``method="embedding"``: ``r = max(0, cos(e(reply), e(t)))`` with all-MiniLM-L6-v2 unit embeddings,
    in [0, 1], on ``device``.

    Two factors for what a similarity misses: ``unfinished=u`` multiplies the score of a
    reply that does not end a sentence (:func:`ends_sentence`: cut off at the token limit) by ``u`` (0 = no credit
    for it); ``brevity=True`` multiplies every score by BLEU's brevity penalty against the target
    (:func:`brevity_penalty`), so a short generic reply cannot score like a full answer. Why: on the untrained
    policy's own samples a preference reward model scores cut-off replies much lower, and PPO on the embedding
    similarity with ``unfinished=0`` alone learned to write short generic replies (README, "Reward hacking").

    Example::

        >>> c = CoherenceReward()
        >>> ctx = [{"role": "user", "content": "Where is my parcel?"}]
        >>> c([ctx], ["It is out for delivery today."], references=["It is out for delivery today."])
        [1.0]
        >>> c([ctx], ["Your parcel is out for delivery."])[0] > c([ctx], ["Nice weather."])[0]
        True
        >>> c([ctx], ["It is out for"], references=["It is out for delivery today."])  # cut off mid-sentence
        [0.0]
    """

    name = "coherence"
    kind = "additive"
    bounds = (0.0, 1.0)

    def __init__(self, method: str | None = None, bleu_weight: float = 0.5, impl: str = "fast",
                 device: Any = None, model_path: str | None = None, batch_size: int = 128, language: str = "en",
                 unfinished: float | None = None, brevity: bool | None = None):
        english = language == "en"
        if method is None:
            method = "embedding" if english else "lexical"
        if unfinished is None:
            unfinished = 0.0 if english else 1.0
        if brevity is None:
            brevity = english
        if method not in ("lexical", "embedding"):
            raise ValueError(f"coherence: method must be 'lexical' or 'embedding', got {method!r}")
        if impl not in ("fast", "reference"):
            raise ValueError(f"coherence: impl must be 'fast' or 'reference', got {impl!r}")
        if not 0.0 <= bleu_weight <= 1.0:
            raise ValueError(f"coherence: bleu_weight must be in [0, 1], got {bleu_weight}")
        if language not in ("en", "zh"):
            raise ValueError(f"coherence: language must be 'en' or 'zh', got {language!r}")
        if isinstance(unfinished, bool) or not isinstance(unfinished, (int, float)) or not 0.0 <= unfinished <= 1.0:
            raise ValueError(f"coherence: unfinished must be a number in [0, 1] (the factor for a reply cut off "
                             f"mid-sentence; 1 = no penalty), got {unfinished!r}")
        self.unfinished = float(unfinished)
        if not isinstance(brevity, bool):
            raise ValueError(f"coherence: brevity must be true or false, got {brevity!r}")
        self.brevity = brevity
        self.language = language
        self.method = method
        self.bleu_weight = float(bleu_weight)
        self.impl = impl
        self.device = None if device is None else str(device)
        self.model_path = model_path
        self.batch_size = batch_size
        self._rouge = None  # rouge_scorer.RougeScorer, only for impl="reference"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_rouge"] = None
        return state

    def targets(self, contexts: Sequence[Context], references: Sequence[str | None] | None = None) -> list[str | None]:
        """What each reply is compared with: the reference when given, else the previous (user) turn."""
        refs = check_references(references, len(contexts))
        out: list[str | None] = []
        for ctx, ref in zip(contexts, refs):
            if ref:
                out.append(ref)
            else:
                prev = last_turn(ctx, "user")
                out.append(prev if prev is not None else last_turn(ctx, None))
        return out

    def __call__(self, contexts: Sequence[Context], responses: Sequence[str],
                 references: Sequence[str | None] | None = None, **kwargs: Any) -> list[float]:
        if len(contexts) != len(responses):
            raise ValueError(f"coherence: {len(contexts)} contexts for {len(responses)} responses")
        targets = self.targets(contexts, references)
        if self.method == "embedding":
            return self._finished(responses, targets, self._embedding(responses, targets))
        w = self.bleu_weight
        if self.language == "zh":
            bleu, rouge = sentence_bleu_zh, rouge_l_f1_chars
        elif self.impl == "fast":
            bleu, rouge = sentence_bleu, rouge_l_f1
        else:
            bleu, rouge = self._reference_metrics()
        out = []
        for reply, target in zip(responses, targets):
            if not target:
                out.append(0.0)
                continue
            b = bleu(reply, target) / 100.0 if w > 0 else 0.0
            r = rouge(reply, target) if w < 1 else 0.0
            out.append(min(1.0, max(0.0, w * b + (1.0 - w) * r)))
        return self._finished(responses, targets, out)

    def _finished(self, responses: Sequence[str], targets: Sequence[str | None], values: list[float]) -> list[float]:
        """``values`` with each reply that does not end a sentence (:func:`ends_sentence`) scaled by ``unfinished``,
        and, with ``brevity``, each by :func:`brevity_penalty` against its target."""
        out = []
        for reply, target, v in zip(responses, targets, values):
            if self.unfinished != 1.0 and not ends_sentence(reply):
                v *= self.unfinished
            if self.brevity and target:
                v *= brevity_penalty(reply, target, self.language)
            out.append(v)
        return out

    def _reference_metrics(self):
        import sacrebleu
        from rouge_score import rouge_scorer

        if self._rouge is None:
            self._rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        scorer = self._rouge

        def bleu(h: str, r: str) -> float:
            return sacrebleu.sentence_bleu(h, [r]).score

        def rouge(h: str, r: str) -> float:
            return scorer.score(r, h)["rougeL"].fmeasure

        return bleu, rouge

    def _embedding(self, responses: Sequence[str], targets: Sequence[str | None]) -> list[float]:
        from .embeddings import embed_unique

        have = [i for i, t in enumerate(targets) if t]
        out = np.zeros(len(responses), dtype=np.float64)
        if have:
            texts = [responses[i] for i in have] + [targets[i] for i in have]
            emb, index = embed_unique(texts, self.model_path, self.device, self.batch_size)
            r = emb[[index[responses[i]] for i in have]]  # (n, D)
            t = emb[[index[targets[i]] for i in have]]  # (n, D)
            cos = (r * t).sum(-1).clamp(0.0, 1.0).float().cpu().numpy()
            out[have] = cos
        return out.tolist()

    def __repr__(self) -> str:
        lang = f", language={self.language!r}" if self.language != "en" else ""
        unf = f", unfinished={self.unfinished}" if self.unfinished != 1.0 else ""
        unf += ", brevity=True" if self.brevity else ""
        return (f"CoherenceReward(method={self.method!r}, bleu_weight={self.bleu_weight}, impl={self.impl!r}{lang}"
                f"{unf})")

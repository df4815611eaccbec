"""The KV-cache adapter: the batched decoder (prefill, splice, left-trim, shared prefill) against full uncached
forwards, and its errors."""

import pytest
import torch

from dialogue_env.kvcache import CachedDecoder, cache_layers, lm_step, position_ids
from dialogue_env.models import tiny_model


@pytest.fixture(scope="module")
def lm():
    return tiny_model(259, seed=3).eval()


def _full_logits(lm, tokens):
    """Next-token logits after ``tokens`` (a list of ids) from one uncached forward."""
    with torch.no_grad():
        return lm(input_ids=torch.tensor([tokens])).logits[0, -1]


def _left_pad(seqs, pad=2):
    S = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), S), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), S), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, S - len(s):] = torch.tensor(s)
        mask[i, S - len(s):] = 1
    return ids, mask


def test_prefill_advance_and_splice_match_uncached_forwards(lm):
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(3, 259, (n,), generator=g).tolist() for n in (5, 9, 3)]
    dec = CachedDecoder(lm, 3)
    ids, mask = _left_pad(seqs)
    logits, hidden = dec.prefill([0, 1, 2], ids, mask)
    assert hidden is None
    for i in range(3):
        torch.testing.assert_close(logits[i], _full_logits(lm, seqs[i]), atol=1e-4, rtol=1e-4)
    for step in range(4):
        active = torch.tensor([True, step % 2 == 0, True])  # row 1 pauses every other step (a masked column)
        tokens = torch.randint(3, 259, (3,), generator=g)
        logits, _ = dec.advance(tokens, active)
        for i in range(3):
            if active[i]:
                seqs[i].append(int(tokens[i]))
                torch.testing.assert_close(logits[i], _full_logits(lm, seqs[i]), atol=1e-4, rtol=1e-4)
    # row 1 starts a new, longer context: encoded alone and spliced in; the others keep their cache
    seqs[1] = torch.randint(3, 259, (14,), generator=g).tolist()
    logits, _ = dec.prefill([1], *_left_pad([seqs[1]]))
    torch.testing.assert_close(logits[0], _full_logits(lm, seqs[1]), atol=1e-4, rtol=1e-4)
    width = dec.kv_mask.shape[1]
    tokens = torch.randint(3, 259, (3,), generator=g)
    logits, _ = dec.advance(tokens, torch.ones(3, dtype=torch.bool))
    for i in range(3):
        seqs[i].append(int(tokens[i]))
        torch.testing.assert_close(logits[i], _full_logits(lm, seqs[i]), atol=1e-4, rtol=1e-4)
    # row 1 again, now short: the columns no row uses any more are trimmed from the left
    seqs[1] = [7, 8]
    dec.prefill([1], *_left_pad([seqs[1]]))
    assert dec.kv_mask.shape[1] < width + 1
    assert bool(dec.kv_mask[:, 0].any())  # after trimming, some row uses the first column
    logits, _ = dec.advance(tokens, torch.ones(3, dtype=torch.bool))
    for i in range(3):
        seqs[i].append(int(tokens[i]))
        torch.testing.assert_close(logits[i], _full_logits(lm, seqs[i]), atol=1e-4, rtol=1e-4)


def test_shared_prefill_equals_separate_prefills_and_keeps_row_order(lm):
    seqs = [[5, 6, 7], [9, 10], [5, 6, 7], [9, 10], [5, 6, 7]]
    ids, mask = _left_pad(seqs)
    shared, plain = CachedDecoder(lm, 5, hidden_layer=1), CachedDecoder(lm, 5, hidden_layer=1)
    a_logits, a_hidden = shared.prefill([4, 3, 2, 1, 0], ids, mask, share=True)  # rows given in reverse
    b_logits, b_hidden = plain.prefill([4, 3, 2, 1, 0], ids, mask)
    torch.testing.assert_close(a_logits, b_logits)
    torch.testing.assert_close(a_hidden, b_hidden)
    tokens = torch.tensor([11, 12, 13, 14, 15])
    a, _ = shared.advance(tokens, torch.ones(5, dtype=torch.bool))
    b, _ = plain.advance(tokens, torch.ones(5, dtype=torch.bool))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # batch row r holds the context given for rows[j] == r: row 0 got seqs[4], row 4 got seqs[0]
    torch.testing.assert_close(a[0], _full_logits(lm, seqs[4] + [11]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a[3], _full_logits(lm, seqs[1] + [14]), atol=1e-4, rtol=1e-4)


def test_partial_prefill_before_any_full_one_is_a_clear_error(lm):
    dec = CachedDecoder(lm, 2)
    with pytest.raises(RuntimeError, match="first prefill must encode every row"):
        dec.prefill([0], *_left_pad([[4, 5]]))


def test_a_cache_without_per_layer_tensors_is_a_clear_error():
    with pytest.raises(NotImplementedError, match="transformers>=4.56"):
        cache_layers(object())


def test_lm_step_leaves_the_users_model_object_alone(lm):
    before = set(vars(lm))
    out, cache = lm_step(lm, torch.tensor([[4, 5, 6]]))
    assert set(vars(lm)) == before
    assert out.logits.shape == (1, 3, 259) and cache is not None


def test_position_ids_count_real_tokens_from_zero():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]

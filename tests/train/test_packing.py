"""The packer on hand-made lengths: every token placed once, no crossing, deterministic, budget respected,
few shapes; and the packed arrays of a padded batch."""

import numpy as np
import pytest

from jaxrlvr.train.packing import bucket, pack_batch, plan_packing, response_width


def _check_plan(plan, lengths, max_tokens):
    m, rows, w = plan.shape
    assert rows * w <= max_tokens
    used = np.zeros((m, rows, w), int)
    for i, n in enumerate(lengths):
        assert plan.offset[i] + n <= w  # never crosses a row end
        used[plan.micro[i], plan.row[i], plan.offset[i] : plan.offset[i] + n] += 1
    assert used.max() == 1 and used.sum() == sum(lengths)  # every token exactly once, no overlap


def test_plan_hand_made():
    lengths = [700, 100, 300, 300, 50, 1000, 20, 20, 500]
    plan = plan_packing(lengths, max_tokens=4096, row_multiple=2)
    _check_plan(plan, lengths, 4096)
    assert plan.shape == (1, 2, 1536) and plan.slots_per_token < 1.05
    # first-fit decreasing: 1000 opens row 0, 700 row 1, 500 goes back to row 0 (first with room)
    assert (plan.row[5], plan.offset[5], plan.row[0], plan.row[8], plan.offset[8]) == (0, 0, 1, 0, 1000)
    again = plan_packing(lengths, max_tokens=4096, row_multiple=2)
    for f in ("micro", "row", "offset"):
        np.testing.assert_array_equal(getattr(plan, f), getattr(again, f))
    with pytest.raises(ValueError, match="max_tokens_per_micro_batch to at least 2000"):
        plan_packing(lengths, max_tokens=1024, row_multiple=2)


def test_long_tailed_batches_few_shapes_little_padding():
    rng = np.random.default_rng(0)
    shapes, ratios = set(), []
    for _ in range(20):  # 20 mini-batches of 64 long-tailed responses (max 2048) after 100-token prompts
        lengths = 100 + np.minimum(rng.geometric(1 / 256, size=64), 2048)
        plan = plan_packing(lengths, max_tokens=8192)
        _check_plan(plan, lengths, 8192)
        shapes.add(plan.shape)
        ratios.append(plan.slots_per_token)
    assert len(shapes) <= 5 and max(ratios) < 1.1 and np.mean(ratios) < 1.05
    assert [bucket(n) for n in (1, 128, 129, 2048, 2049, 2177, 9000)] == [128, 128, 256, 2048, 2304, 2304, 9216]


def test_pack_batch_arrays():
    p, r = 4, 5  # prompt columns (left padded), response columns (right padded)
    ids = np.arange(1, 3 * (p + r) + 1).reshape(3, p + r)
    am = np.array([[0, 0, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 1, 1, 1]], np.int32)
    plan, a = pack_batch(ids, am, p, max_tokens=32)
    assert plan.shape == (1, 1, 32)  # 5 + 5 + 6 tokens in one row, capped by the budget
    row_ids, seg, pos, slots, tgt = (
        a[k][0] for k in ("input_ids", "segment_ids", "positions", "resp_slots", "targets")
    )
    assert slots.shape == tgt.shape == (32,)  # response slots: min(bucket(9), width)
    for b in range(3):
        real = ids[b][am[b] > 0]
        o = plan.offset[b]
        np.testing.assert_array_equal(row_ids[o : o + len(real)], real)
        assert len(set(seg[o : o + len(real)])) == 1 and seg[o] > 0
        np.testing.assert_array_equal(pos[o : o + len(real)], np.arange(len(real)))
        n_resp = int(am[b, p:].sum())
        idx = a["token_index"][b, :n_resp]  # response slot k predicts response token t ...
        np.testing.assert_array_equal(tgt[idx], ids[b, p : p + n_resp])
        np.testing.assert_array_equal(row_ids[slots[idx] + 1], ids[b, p : p + n_resp])  # ... from slot slots[k]
        assert np.all(seg[slots[idx]] == seg[o])  # inside its own sequence: never a prompt of another
    assert seg[16:].max() == 0 and np.count_nonzero(tgt) == 3 + 1 + 5 and not slots[9:].any()
    # the output layer's slots: the rows' most response tokens on the width grid, not the row width
    plan = plan_packing([600, 300, 900], max_tokens=2048)
    assert plan.width == 1920 and response_width(plan, [100, 5, 200]) == 384
    bad = am.copy()
    bad[1, 6] = 1  # a hole in the response
    with pytest.raises(ValueError, match="row 1"):
        pack_batch(ids, bad, p, max_tokens=32)

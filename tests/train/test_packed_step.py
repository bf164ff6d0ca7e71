"""Packed vs padded: the same rollout batch through the real jitted step gives the same loss, gradient norm,
updated params and metrics (f32, 1e-5), for every aggregation mode with KL, entropy bonus and Pos-Adv
weights on (the metrics include the token and sequence counts that are the other modes' denominators);
packed scoring gives the padded old log-probs. The model runs the blockwise attention with tiny blocks in
both layouts."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrlvr import algos
from jaxrlvr.models import ModelConfig, init_params
from jaxrlvr.train.packing import pack_batch
from jaxrlvr.train.step import TrainState, score_tokens, train_step

CFG = dataclasses.replace(ModelConfig.preset("nano"), attention_impl="xla_blockwise", attention_block=8)
P, R, B, MICRO = 6, 10, 8, 4
# One optimizer object for every test: ``tx`` is a static argument of the jitted step (hashed by identity),
# so a fresh ``optax.sgd`` per test would recompile steps that another test has already compiled (the
# on-policy test's update with ``old_logp`` is the packed-vs-padded test's update of the same case).
TX = optax.sgd(1.0)


def _rollout():
    rng = np.random.default_rng(0)
    ids = rng.integers(3, CFG.vocab_size, (B, P + R)).astype(np.int32)
    p_len = rng.integers(1, P + 1, B)
    r_len = np.array([10, 1, 3, 0, 7, 2, 10, 4])  # one empty response (a row with no loss token)
    am = np.concatenate([np.arange(P)[None] >= P - p_len[:, None], np.arange(R)[None] < r_len[:, None]], 1)
    mask = am[:, P:].astype(np.int32)
    adv = np.repeat(rng.normal(size=(B, 1)), R, 1).astype(np.float32) * mask
    ref = rng.normal(size=(B, R)).astype(np.float32) * 0.1
    return {
        "input_ids": ids,
        "attention_mask": am.astype(np.int32),
        "mask": mask,
        "adv": adv,
        "truncated": r_len == R,
        "ref_delta": ref,
    }


@pytest.fixture(scope="module")
def setup():
    batch = _rollout()
    params = init_params(CFG, jax.random.key(0))
    padded = {k: jnp.asarray(v) for k, v in batch.items() if k != "ref_delta"}
    common = dict(prompt_len=P, temperature=0.7)
    old_pad, ent_pad = score_tokens(
        CFG, params, padded["input_ids"], padded["attention_mask"], micro_batch=MICRO, **common
    )
    plan, packed = pack_batch(batch["input_ids"], batch["attention_mask"], P, max_tokens=64, row_multiple=2)
    assert plan.n_micro >= 2 and plan.rows == 2  # several micro-batches of two rows
    packed = {k: jnp.asarray(v) for k, v in packed.items()}
    old_pk, ent_pk = score_tokens(CFG, params, packed, None, micro_batch=plan.rows, **common)
    return batch, params, padded, packed, plan, (old_pad, ent_pad, old_pk, ent_pk)


def test_packed_scoring_matches_padded(setup):
    batch, *_, (old_pad, ent_pad, old_pk, ent_pk) = setup
    m = batch["mask"] > 0
    np.testing.assert_allclose(np.where(m, old_pk, 0), np.where(m, old_pad, 0), atol=1e-5)
    np.testing.assert_allclose(np.where(m, ent_pk, 0), np.where(m, ent_pad, 0), atol=1e-5)
    assert np.all(np.asarray(old_pk)[~m] == 0)


# Fast: per-sequence means (the mode most sensitive to where sequences sit) with KL, entropy bonus, Pos-Adv
# and truncation masking; and KL-Cov with the high-entropy quantile, whose statistics are taken over the
# mini-batch (train.step.minibatch_statistics) in both layouts. The other modes compile two more train steps
# each (~10 s of CPU apiece), so they are marked slow.
CASES = [
    dict(
        loss_agg_mode="seq-mean-token-mean",
        kl_coef=0.1,
        entropy_coef=0.01,
        pos_adv_mode="constant",
        mask_truncated=True,
    ),
    dict(loss_agg_mode="token-mean", loss_variant="kl_cov", kl_cov_ratio=0.2, high_entropy_only=True),
] + [
    pytest.param(dict(loss_agg_mode=m, kl_coef=0.1, entropy_coef=0.01, pos_adv_mode="constant"), marks=pytest.mark.slow)
    for m in algos.AGG_MODES
    if m != "seq-mean-token-mean"
]


@pytest.mark.parametrize("case", CASES)
def test_packed_update_matches_padded(setup, case):
    batch, params, padded, packed, plan, (old_pad, *_) = setup
    algo = algos.AlgoConfig(group_size=2, **case)
    tx = TX
    extra = {"old_logp": old_pad - 0.05, "ref_logp": old_pad + jnp.asarray(batch["ref_delta"])}
    outs = []
    for b, micro in (
        ({**padded, **extra}, MICRO),
        ({**packed, **{k: padded[k] for k in ("mask", "adv", "truncated")}, **extra}, plan.rows),
    ):
        state = TrainState(
            step=jnp.int32(0), params=params, opt_state=tx.init(params), knobs=algos.initial_step_state(algo)
        )
        state = jax.tree.map(jnp.copy, state)
        kw = dict(model_cfg=CFG, algo_cfg=algo, tx=tx, prompt_len=P, temperature=0.7, micro_batch=micro)
        outs.append(train_step(state, b, jax.random.key(1), **kw))
    (a, ma), (p, mp) = outs
    assert float(ma["skipped"]) == 0.0 and abs(float(ma["loss"])) > 0
    for k in ma:
        np.testing.assert_allclose(float(mp[k]), float(ma[k]), rtol=1e-5, atol=1e-6, err_msg=k)
    for x, y in zip(jax.tree.leaves(p.params), jax.tree.leaves(a.params), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5)


@pytest.mark.parametrize(("case", "layout"), [(CASES[0], "padded"), (CASES[0], "packed"), (CASES[1], "packed")])
def test_on_policy_update_takes_old_logp_from_its_own_forward(setup, case, layout):
    """A batch without ``old_logp`` (the first mini-batch of a step) gives the update of the scored old
    log-probs (loss, metrics, params), and returns those log-probs and entropies for the step's records."""
    batch, params, padded, packed, plan, (old_pad, ent_pad, *_) = setup
    algo = algos.AlgoConfig(group_size=2, **case)
    tx = TX
    b, micro = (
        (padded, MICRO)
        if layout == "padded"
        else (packed | {k: padded[k] for k in ("mask", "adv", "truncated")}, plan.rows)
    )
    b = b | {"ref_logp": old_pad + jnp.asarray(batch["ref_delta"])}
    outs = []
    for extra in ({"old_logp": old_pad}, {}):
        state = TrainState(
            step=jnp.int32(0), params=params, opt_state=tx.init(params), knobs=algos.initial_step_state(algo)
        )
        state = jax.tree.map(jnp.copy, state)
        kw = dict(model_cfg=CFG, algo_cfg=algo, tx=tx, prompt_len=P, temperature=0.7, micro_batch=micro)
        outs.append(train_step(state, b | extra, jax.random.key(1), **kw))
    (a, ma), (p, mp) = outs
    m = batch["mask"] > 0
    np.testing.assert_allclose(mp.pop("tokens_logp"), np.where(m, old_pad, 0), atol=1e-5)
    np.testing.assert_allclose(mp.pop("tokens_entropy"), np.where(m, ent_pad, 0), atol=1e-5)
    assert set(mp) == set(ma) and float(mp["clipfrac"]) == 0.0
    for k in ma:
        np.testing.assert_allclose(float(mp[k]), float(ma[k]), rtol=1e-5, atol=1e-6, err_msg=k)
    for x, y in zip(jax.tree.leaves(p.params), jax.tree.leaves(a.params), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5)

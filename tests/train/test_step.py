"""The jitted update: exact gradient accumulation over micro-batches, the NaN guard, scoring forward."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrlvr import algos
from jaxrlvr.models import ModelConfig, init_params
from jaxrlvr.train.step import OptimConfig, TrainState, make_optimizer, score_tokens, train_step

CFG = ModelConfig.preset("nano")
P, R, B = 4, 6, 8


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, CFG.vocab_size, (B, P + R)).astype(np.int32)
    am = np.ones((B, P + R), np.int32)
    am[:, :2][::2] = 0  # left padding on half the prompts
    lengths = rng.integers(1, R + 1, B)
    mask = (np.arange(R)[None] < lengths[:, None]).astype(np.int32)
    am[:, P:] = mask
    adv = np.repeat(rng.normal(size=(B, 1)), R, 1).astype(np.float32) * mask
    return {
        "input_ids": jnp.asarray(ids),
        "attention_mask": jnp.asarray(am),
        "mask": jnp.asarray(mask),
        "adv": jnp.asarray(adv),
        "truncated": jnp.zeros((B,), bool),
    }


def _update(state, batch, algo, tx, micro):
    """One jitted update at temperature 1 with the module's model and prompt length."""
    return train_step(
        state,
        batch,
        jax.random.key(1),
        model_cfg=CFG,
        algo_cfg=algo,
        tx=tx,
        prompt_len=P,
        temperature=1.0,
        micro_batch=micro,
    )


def _state(tx, algo):
    params = init_params(CFG, jax.random.key(0))
    return TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params), knobs=algos.initial_step_state(algo))


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean"])
def test_micro_batch_accumulation_is_exact(mode):
    algo = algos.AlgoConfig(group_size=2, loss_agg_mode=mode)
    tx = optax.sgd(1.0)  # params move by exactly -grad (Adam's first step would amplify float noise)
    batch = _batch()
    state0 = _state(tx, algo)
    old_logp, _ = score_tokens(
        CFG,
        state0.params,
        batch["input_ids"],
        batch["attention_mask"],
        prompt_len=P,
        temperature=1.0,
        micro_batch=B,
    )
    batch["old_logp"] = old_logp - 0.05  # ratio != 1 so clipping is exercised
    outs = []
    for micro in (B, 2):
        state = _state(tx, algo)
        new, m = _update(state, batch, algo, tx, micro)
        outs.append((new, m))
    (a, ma), (b, mb) = outs
    np.testing.assert_allclose(float(ma["loss"]), float(mb["loss"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(ma["grad_norm"]), float(mb["grad_norm"]), rtol=1e-5)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    assert int(a.step) == 1 and float(ma["skipped"]) == 0.0


def test_non_finite_update_is_skipped():
    algo = algos.AlgoConfig(group_size=2)
    tx = make_optimizer(OptimConfig(lr=1e-2, warmup_steps=0))
    batch = _batch()
    batch["old_logp"] = jnp.zeros((B, R))
    batch["adv"] = batch["adv"].at[0, 0].set(jnp.nan)
    state = _state(tx, algo)
    before = jax.tree.map(np.asarray, state.params)
    new, m = _update(state, batch, algo, tx, B)
    assert float(m["skipped"]) == 1.0 and int(new.step) == 0
    for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(new.params), strict=True):
        np.testing.assert_array_equal(x, np.asarray(y))


def test_non_finite_parameters_after_a_finite_gradient_are_skipped():
    """An infinite learning rate turns a finite gradient into infinite parameters: the guard checks the
    update itself, keeps params and optimizer state, and says so."""
    algo = algos.AlgoConfig(group_size=2)
    tx = optax.adam(float("inf"))
    batch = _batch()
    batch["old_logp"] = jnp.zeros((B, R))
    state = _state(tx, algo)
    before = jax.tree.map(np.asarray, (state.params, state.opt_state))
    new, m = _update(state, batch, algo, tx, B)
    assert np.isfinite(float(m["grad_norm"])) and float(m["skipped"]) == 1.0
    assert float(m["skipped_nonfinite_update"]) == 1.0 and int(new.step) == 0
    for x, y in zip(jax.tree.leaves(before), jax.tree.leaves((new.params, new.opt_state)), strict=True):
        np.testing.assert_array_equal(x, np.asarray(y))


def test_score_tokens_matches_full_forward_at_temperature():
    from jaxrlvr.models import forward

    batch = _batch(1)
    params = init_params(CFG, jax.random.key(0))
    logp, ent = score_tokens(
        CFG, params, batch["input_ids"], batch["attention_mask"], prompt_len=P, temperature=0.7, micro_batch=4
    )
    logits = forward(CFG, params, batch["input_ids"], batch["attention_mask"])[:, P - 1 : -1] / 0.7
    ref = jax.nn.log_softmax(logits, -1)
    want = jnp.take_along_axis(ref, batch["input_ids"][:, P:, None], -1)[..., 0]
    np.testing.assert_allclose(np.asarray(logp), np.asarray(want), atol=1e-5)
    want_ent = -jnp.sum(jnp.exp(ref) * ref, -1)
    np.testing.assert_allclose(np.asarray(ent), np.asarray(want_ent), atol=1e-5)


def test_optim_config_validation():
    with pytest.raises(ValueError, match="optim.schedule"):
        OptimConfig(schedule="linear")
    for lr in (0.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="optim.lr must be a finite number"):
            dataclasses.replace(OptimConfig(), lr=lr)
    with pytest.raises(ValueError, match="optim.weight_decay"):
        OptimConfig(weight_decay=float("nan"))

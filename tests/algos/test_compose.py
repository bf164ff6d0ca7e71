"""AlgoConfig, StepState, shape_advantages, token_loss, finalize_metrics."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrlvr import algos

token_loss = jax.jit(algos.token_loss, static_argnums=0)
shape_advantages = jax.jit(algos.shape_advantages, static_argnums=0)
advance = jax.jit(algos.advance_step_state, static_argnums=0, static_argnames=("total_steps", "num_epochs"))

B, T, G = 8, 6, 4
LENGTHS = np.array([6, 5, 4, 3, 6, 2, 1, 6])
MASK = (np.arange(T)[None, :] < LENGTHS[:, None]).astype(np.float32)
REWARDS = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], np.float32)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    logp = -rng.uniform(0.05, 3.0, size=(B, T)).astype(np.float32)
    old = (logp + rng.normal(0, 0.2, size=(B, T))).astype(np.float32)
    ref = (logp + rng.normal(0, 0.2, size=(B, T))).astype(np.float32)
    ent = rng.uniform(0.0, 2.0, size=(B, T)).astype(np.float32)
    adv = np.where(MASK > 0, rng.normal(size=(B, 1)), 0.0).astype(np.float32)
    return logp, old, ref, ent, adv


def test_config_defaults_hashable_and_static():
    cfg = algos.AlgoConfig()
    assert hash(cfg) == hash(algos.AlgoConfig())
    assert {cfg: 1}[algos.AlgoConfig()] == 1
    assert not cfg.needs_entropy and not cfg.needs_rng and not cfg.uses_kl
    assert algos.AlgoConfig(loss_variant="clip_free").clip_bounds == (math.inf, math.inf)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.clip_low = 0.1


@pytest.mark.parametrize(
    "field,value",
    [
        ("group_size", 1),
        ("group_size", 2.0),
        ("adv_scale", "global"),
        ("loss_variant", "ppo"),
        ("loss_agg_mode", "mean"),
        ("kl_kind", "k4"),
        ("pos_adv_mode", "always"),
        ("clip_low", -0.1),
        ("clip_c", 1.0),
        ("clip_cov_ratio", 0.0),
        ("high_entropy_fraction", 1.5),
        ("kl_coef", -1.0),
        ("entropy_adv_kappa", 0.0),
        ("ppl_alpha", float("nan")),
        ("loss_norm_len", 0),
        ("ppl_shaping", 1),
        ("pos_adv_lambda_init", 2.0),
        ("clip_cov_ub", 0.5),
        ("entropy_coef_max", -1.0),
        ("exclusive_tokens", "drop"),
        ("rand_pos_clip_match", True),  # needs rand_pos_clip
    ],
)
def test_config_validation_names_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"AlgoConfig\.{field} .*{value!r}"):
        algos.AlgoConfig(**{field: value})


def test_config_from_dict():
    cfg = algos.AlgoConfig.from_dict({"group_size": 4, "clip_high": 0.3})
    assert cfg.group_size == 4 and cfg.clip_high == 0.3
    with pytest.raises(ValueError, match="clip_hihg"):
        algos.AlgoConfig.from_dict({"clip_hihg": 0.3})
    assert algos.AlgoConfig(clip_low=math.inf, clip_high=math.inf).clip_bounds == (math.inf, math.inf)


def test_shape_advantages_plain_is_group_advantages():
    cfg = algos.AlgoConfig(group_size=G)
    adv, aux = shape_advantages(cfg, REWARDS, None, MASK)
    want = np.asarray(algos.group_advantages(REWARDS, G))
    np.testing.assert_allclose(aux["adv_B"], want)
    np.testing.assert_allclose(adv, np.where(MASK > 0, want[:, None], 0.0))


def test_shape_advantages_chain_matches_manual_composition():
    logp, *_ = _data()
    cfg = algos.AlgoConfig(group_size=G, ppl_shaping=True, ppl_alpha=0.05, position_shaping=True, position_n=0.5)
    state = algos.initial_step_state(cfg)
    adv, aux = shape_advantages(cfg, REWARDS, logp, MASK, state)
    a = jnp.where(MASK > 0, algos.group_advantages(REWARDS, G)[:, None], 0.0)
    a = algos.ppl_shaped_advantages(a, algos.ppl_weights(logp, MASK, G), 0.05)
    a = algos.position_shaped_advantages(a, algos.position_bonus(MASK, gamma=0.1, m=15.0, n=0.5))
    np.testing.assert_allclose(adv, np.where(MASK > 0, a, 0.0), rtol=1e-6, atol=1e-7)
    assert set(aux) == {"adv_B", "log_ppl_B", "ppl_weight_B"}
    # Both shapings off through the traced multipliers -> plain group advantages, no recompilation.
    off = state._replace(ppl_active=jnp.float32(0.0), position_active=jnp.float32(0.0))
    adv_off, _ = shape_advantages(cfg, REWARDS, logp, MASK, off)
    np.testing.assert_allclose(adv_off, np.where(MASK > 0, algos.group_advantages(REWARDS, G)[:, None], 0.0))
    with pytest.raises(ValueError, match="logp_BT"):
        algos.shape_advantages(cfg, REWARDS, None, MASK)


def test_token_loss_clip_equals_policy_loss_plus_aggregate():
    logp, old, ref, ent, adv = _data()
    cfg = algos.AlgoConfig(group_size=G, clip_c=3.0, loss_agg_mode="seq-mean-token-mean")
    num, den, met = token_loss(cfg, logp, old, None, None, adv, MASK, None, algos.initial_step_state(cfg))
    loss_bt, pm = algos.policy_loss(logp, old, adv, MASK, clip_c=3.0)
    want_num, want_den = algos.aggregate(loss_bt, MASK, "seq-mean-token-mean")
    np.testing.assert_allclose([num, den], [want_num, want_den], rtol=1e-5)
    for k, v in pm.items():
        np.testing.assert_allclose(met[k], v, rtol=1e-6)
    assert float(met["num_seqs"]) == B


def test_token_loss_kl_and_entropy_terms():
    logp, old, ref, ent, adv = _data()
    cfg = algos.AlgoConfig(group_size=G, kl_coef=0.1, kl_kind="k3", entropy_coef=0.01)
    state = algos.initial_step_state(cfg)
    num, den, met = token_loss(cfg, logp, old, ref, ent, adv, MASK, None, state)
    pg, _ = algos.policy_loss(logp, old, adv, MASK)
    total = pg + 0.1 * algos.kl_penalty(logp, ref, "k3") - 0.01 * ent
    want_num, want_den = algos.aggregate(total, MASK, "token-mean")
    np.testing.assert_allclose([num, den], [want_num, want_den], rtol=1e-5)
    m = MASK > 0
    np.testing.assert_allclose(met["entropy"], ent[m].sum(), rtol=1e-5)
    np.testing.assert_allclose(met["kl"], np.asarray(algos.kl_penalty(logp, ref, "k3"))[m].sum(), rtol=1e-5)
    # The entropy bonus is differentiable: d num / d H = -coef on valid tokens, 0 on padding.
    g = jax.jit(jax.grad(lambda h: algos.token_loss(cfg, logp, old, ref, h, adv, MASK, None, state)[0]))(ent)
    np.testing.assert_allclose(g, np.where(m, -0.01, 0.0), rtol=1e-6)


@pytest.mark.parametrize("variant", ["clip", "clip_free", "clip_cov", "kl_cov"])
def test_token_loss_every_variant_with_every_option(variant):
    logp, old, ref, ent, adv = _data(1)
    cfg = algos.AlgoConfig(
        group_size=G,
        loss_variant=variant,
        clip_cov_ratio=0.1,
        clip_cov_lb=-10.0,
        kl_cov_ratio=0.1,
        entropy_adv=True,
        kl_coef=0.01,
        entropy_adaptive=True,
        entropy_coef=1e-3,
        pos_adv_mode="entropy",
        drop_negative_adv=False,
        rand_pos_clip=True,
        rand_pos_clip_ratio=0.1,
        high_entropy_only=True,
        mask_truncated=True,
        loss_agg_mode="seq-mean-token-sum-norm",
        loss_norm_len=8,
    )
    state = algos.initial_step_state(cfg)._replace(lam=jnp.float32(0.5))
    trunc = np.array([0, 0, 0, 0, 0, 0, 0, 1], bool)

    def f(lp):
        num, den, met = algos.token_loss(cfg, lp, old, ref, ent, adv, MASK, jax.random.key(0), state, truncated_B=trunc)
        return num, (den, met)

    (num, (den, met)), g = jax.jit(jax.value_and_grad(f, has_aux=True))(logp)
    assert np.isfinite(float(num)) and float(den) == B * 8
    assert float(met["num_tokens"]) == MASK[:7].sum()
    assert float(met["high_entropy_kept"]) > 0 and float(met["rand_pos_clipped"]) >= 1
    assert float(met["weight_zero"]) > 0
    if variant == "clip_cov":
        assert float(met["clip_cov_selected"]) >= 1
    if variant == "kl_cov":
        assert float(met["kl_cov_selected"]) >= 1
    assert np.all(np.isfinite(g))
    assert np.all(np.asarray(g)[MASK == 0] == 0) and np.all(np.asarray(g)[7] == 0)  # padding, truncated row


def test_token_loss_zero_weight_tokens_get_zero_policy_gradient():
    logp, old, ref, ent, adv = _data(2)
    cfg = algos.AlgoConfig(group_size=G, pos_adv_mode="constant", pos_adv_lambda=0.0, loss_variant="clip_free")
    state = algos.initial_step_state(cfg)
    g = jax.jit(jax.grad(lambda lp: algos.token_loss(cfg, lp, old, None, None, adv, MASK, None, state)[0]))(logp)
    g = np.asarray(g)
    assert np.all(g[adv > 0] == 0) and np.all(g[(adv < 0) & (MASK > 0)] != 0)
    # Traced lam: the same compiled function with lam = 1 trains on the positive tokens again.
    g1 = jax.jit(jax.grad(lambda lp, s: algos.token_loss(cfg, lp, old, None, None, adv, MASK, None, s)[0]))(
        logp, state._replace(lam=jnp.float32(1.0))
    )
    assert np.all(np.asarray(g1)[adv > 0] != 0)


def test_token_loss_clip_cov_selected_tokens_have_zero_gradient():
    logp, old, ref, ent, adv = _data(3)
    cfg = algos.AlgoConfig(
        group_size=G, loss_variant="clip_cov", clip_cov_ratio=0.2, clip_cov_lb=-10.0, clip_cov_ub=10.0
    )
    state = algos.initial_step_state(cfg)
    key = jax.random.key(4)
    sel = jax.jit(algos.clip_cov_select, static_argnames=("ratio", "lb", "ub", "clip_low", "clip_high"))(
        logp,
        old,
        adv,
        MASK,
        jax.random.fold_in(key, 0),
        ratio=0.2,
        lb=-10.0,
        ub=10.0,
        clip_low=0.2,
        clip_high=0.28,
    )
    assert int(sel.sum()) == int(0.2 * MASK.sum())

    def f(lp):
        num, den, met = algos.token_loss(cfg, lp, old, None, None, adv, MASK, key, state)
        return num, (den, met)

    (num, (den, met)), g = jax.jit(jax.value_and_grad(f, has_aux=True))(logp)
    assert np.all(np.asarray(g)[np.asarray(sel)] == 0)
    plain = algos.AlgoConfig(group_size=G)  # same clip bounds, no Clip-Cov
    g_plain = jax.jit(jax.grad(lambda lp: algos.token_loss(plain, lp, old, None, None, adv, MASK, None, None)[0]))(logp)
    np.testing.assert_array_equal(np.asarray(g)[~np.asarray(sel)], np.asarray(g_plain)[~np.asarray(sel)])
    assert np.all(np.asarray(g_plain)[np.asarray(sel)] != 0)
    assert float(den) == MASK.sum()  # detached tokens still count in the denominator
    assert float(met["clip_cov_selected"]) == int(sel.sum())


@pytest.mark.parametrize("setting", [{"drop_negative_adv": True}, {"pos_adv_mode": "constant", "pos_adv_lambda": 0.0}])
def test_exclusive_tokens_mask_differs_from_zero_weight_only_by_the_denominator(setting):
    logp, old, ref, ent, adv = _data(5)
    out = {}
    for mode in ("zero_weight", "mask"):
        cfg = algos.AlgoConfig(group_size=G, exclusive_tokens=mode, **setting)
        out[mode] = token_loss(cfg, logp, old, None, None, adv, MASK, None, algos.initial_step_state(cfg))
    valid = MASK > 0
    excluded = valid & ((adv < 0) if "drop_negative_adv" in setting else (adv > 0))
    assert 0 < excluded.sum() < valid.sum()
    np.testing.assert_allclose(out["mask"][0], out["zero_weight"][0], rtol=1e-6)  # same numerator
    assert float(out["zero_weight"][1]) == valid.sum()
    assert float(out["mask"][1]) == valid.sum() - excluded.sum()  # excluded tokens leave the token mean
    assert float(out["mask"][2]["num_tokens_excluded"]) == excluded.sum()


def test_rand_pos_clip_match_zeroes_as_many_tokens_as_clip_cov_detaches():
    logp, old, ref, ent, adv = _data(3)
    kw = dict(group_size=G, clip_cov_ratio=0.2, clip_cov_lb=-10.0, clip_cov_ub=10.0, clip_c=None)
    key = jax.random.key(4)
    cov = algos.AlgoConfig(loss_variant="clip_cov", **kw)
    n_cov = token_loss(cov, logp, old, None, None, adv, MASK, key, None)[2]["clip_cov_selected"]
    rand = algos.AlgoConfig(rand_pos_clip=True, rand_pos_clip_match=True, rand_pos_clip_ratio=0.5, **kw)
    met = token_loss(rand, logp, old, None, None, adv, MASK, key, None)[2]
    n_pos = int(((adv > 0) & (MASK > 0)).sum())
    assert 0 < float(n_cov) <= n_pos and float(met["rand_pos_clipped"]) == float(n_cov)
    nominal = algos.AlgoConfig(rand_pos_clip=True, rand_pos_clip_ratio=0.5, **kw)  # not matched: 50% of tokens
    assert float(token_loss(nominal, logp, old, None, None, adv, MASK, key, None)[2]["rand_pos_clipped"]) == min(
        n_pos, int(0.5 * MASK.sum())
    )


def test_token_loss_missing_inputs_are_errors():
    logp, old, ref, ent, adv = _data()
    s = None
    with pytest.raises(ValueError, match="ref_logp_BT"):
        algos.token_loss(algos.AlgoConfig(group_size=G, kl_coef=0.1), logp, old, None, ent, adv, MASK, None, s)
    with pytest.raises(ValueError, match="entropy_BT"):
        algos.token_loss(algos.AlgoConfig(group_size=G, entropy_adv=True), logp, old, None, None, adv, MASK, None, s)
    with pytest.raises(ValueError, match="rng"):
        algos.token_loss(algos.AlgoConfig(group_size=G, rand_pos_clip=True), logp, old, None, None, adv, MASK, None, s)
    with pytest.raises(ValueError, match="truncated_B"):
        algos.token_loss(algos.AlgoConfig(group_size=G, mask_truncated=True), logp, old, None, None, adv, MASK, None, s)


def test_step_state_initial_and_advance():
    stage = algos.AlgoConfig(pos_adv_mode="stage")
    s = algos.initial_step_state(stage)
    assert float(s.lam) == 0.0
    lams = [float(advance(stage, s, step=k, total_steps=10).lam) for k in (4, 7, 9)]
    np.testing.assert_allclose(lams, [0.0, 0.5, 1.0])
    epoch = algos.AlgoConfig(pos_adv_mode="epoch")
    assert float(advance(epoch, algos.initial_step_state(epoch), epoch=3, num_epochs=3).lam) == 1.0
    const = algos.AlgoConfig(pos_adv_mode="constant", pos_adv_lambda=0.3)
    assert float(algos.initial_step_state(const).lam) == pytest.approx(0.3)

    ctrl = algos.AlgoConfig(pos_adv_mode="entropy", entropy_adaptive=True, entropy_coef=1e-3)
    s = algos.initial_step_state(ctrl)
    assert float(s.lam) == 0.0 and float(s.entropy_coef) == pytest.approx(1e-3)
    s = advance(ctrl, s, entropy=jnp.float32(0.5))  # high entropy: lam up, entropy term off
    assert float(s.lam) == pytest.approx(0.05) and float(s.entropy_coef) == 0.0
    assert float(s.adaptive_coef) == pytest.approx(0.9e-3)
    s = advance(ctrl, s, entropy=jnp.float32(0.1), position_active=0.0)  # low entropy: lam down, term on
    assert float(s.lam) == 0.0 and float(s.entropy_coef) == pytest.approx(1e-3)
    assert float(s.position_active) == 0.0 and float(s.ppl_active) == 1.0
    with pytest.raises(ValueError, match="entropy="):
        algos.advance_step_state(ctrl, s)
    with pytest.raises(ValueError, match="total_steps="):
        algos.advance_step_state(stage, s, step=1)


def test_finalize_metrics():
    met = {
        "num_tokens": 4.0,
        "num_tokens_pos": 2.0,
        "num_tokens_neg": 0.0,
        "clipfrac": 1.0,
        "entropy_pos": 3.0,
        "entropy_neg": 0.0,
    }
    out = jax.jit(algos.finalize_metrics)(met)
    assert out["clipfrac"] == 0.25 and out["entropy_pos"] == 1.5 and out["entropy_neg"] == 0.0
    assert out["num_tokens"] == 4.0
    assert float(jax.jit(algos.finalize_loss)(jnp.float32(3.0), jnp.float32(0.0))) == 3.0

"""Paper-scale updates on the CPU: packed (token-budget micro-batches, blockwise attention) vs padded rows.

    python scripts/bench_update_scale.py [--json] [--repeats 3] [--max_new_tokens 2048]

One rollout batch with long-tailed response lengths (the quantiles of an exponential of mean
``max_new_tokens / 8``, clipped at ``max_new_tokens``; prompts of ``prompt_len / 2 .. prompt_len`` tokens)
goes through one full update (every mini-batch, real optimizer) twice in the same process, from the same
state: padded as before packing (every row ``prompt_len + max_new_tokens`` slots, ``--micro_batch`` rows
per forward/backward, the dense attention formula) and packed (``train.packing.pack_batch`` with
``--max_tokens`` slots per micro-batch, blockwise attention). Wall times exclude compilation (one warm-up
update each) and are the best of ``--repeats``. Prints one JSON object (``--json``) with
``update_slots_per_useful_token`` (packed slots computed per real token), ``padded_slots_per_useful_token``,
``update_speedup_vs_padded``, ``max_abs_loss_diff`` (per mini-batch), ``max_abs_param_diff`` after the
update, and ``packed_shapes_20_steps``: the distinct packed shapes (one XLA compilation each) of 20 steps of
fresh batches from the same length distribution.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv_heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32, help="rollout rows (prompts x G)")
    ap.add_argument("--mini_batch", type=int, default=16, help="rows per optimizer update")
    ap.add_argument("--micro_batch", type=int, default=4, help="padded rows per forward/backward")
    ap.add_argument("--prompt_len", type=int, default=64)
    ap.add_argument("--max_new_tokens", type=int, default=2048)
    ap.add_argument("--max_tokens", type=int, default=8192, help="packed slots per micro-batch")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default=None, help="a model preset (e.g. qwen2.5-0.5b) instead of --layers/--width/...")
    ap.add_argument("--dtype", default="float32", help="compute dtype (bfloat16 on a GPU)")
    ap.add_argument("--remat", default="none", help="none | full | dots")
    ap.add_argument("--attention_impl", default="auto", help="the packed path's attention (models.attention)")
    ap.add_argument("--padded_attention_impl", default="dense", help="the padded path's (dense: as before packing)")
    ap.add_argument("--peak_flops", type=float, default=0.0, help="device peak FLOP/s: adds MFU to the output")


def _lengths(rng, n, args, *, quantiles=False):
    """Prompt and response lengths; responses exponential with mean max_new_tokens / 8 (drawn, or with
    ``quantiles`` the n evenly spaced quantiles in a shuffled order: the measured batch has exactly the
    intended shape, mean ~1/8 of the maximum and p99 > 3x the mean)."""
    import numpy as np

    mean = args.max_new_tokens / 8
    r = -mean * np.log1p(-(np.arange(n) + 0.5) / n) if quantiles else rng.exponential(mean, n)
    r = rng.permutation(r) if quantiles else r
    r = np.minimum(np.ceil(r), args.max_new_tokens).astype(int)
    p = rng.integers(args.prompt_len // 2, args.prompt_len + 1, n)
    return p, np.maximum(r, 1)


def _rollout(rng, args):
    import numpy as np

    b, pl, rl = args.batch, args.prompt_len, args.max_new_tokens
    p, r = _lengths(rng, b, args, quantiles=True)
    am = np.concatenate([np.arange(pl)[None] >= pl - p[:, None], np.arange(rl)[None] < r[:, None]], 1)
    ids = rng.integers(3, args.vocab, (b, pl + rl)) * am
    mask = am[:, pl:].astype(np.int32)
    adv = np.repeat(rng.normal(size=(b, 1)), rl, 1).astype(np.float32) * mask
    return {"input_ids": ids.astype(np.int32), "attention_mask": am.astype(np.int32), "mask": mask, "adv": adv}, p, r


def run_update(args) -> dict:
    import dataclasses

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxrlvr import algos
    from jaxrlvr.models import ModelConfig, init_params
    from jaxrlvr.train.packing import pack_batch, plan_packing
    from jaxrlvr.train.step import OptimConfig, TrainState, make_optimizer, score_tokens, train_step

    common = dict(
        max_position_embeddings=args.prompt_len + args.max_new_tokens,
        dtype=args.dtype,
        remat=args.remat,
        attention_impl=args.attention_impl,
    )
    if args.preset:
        cfg = ModelConfig.preset(args.preset, **common)
        args.vocab = cfg.vocab_size
    else:
        cfg = ModelConfig(
            vocab_size=args.vocab,
            hidden_size=args.width,
            intermediate_size=3 * args.width,
            num_layers=args.layers,
            num_heads=args.heads,
            num_kv_heads=args.kv_heads,
            head_dim=args.width // args.heads,
            name="bench",
            **common,
        )
    rng = np.random.default_rng(args.seed)
    batch, p_len, r_len = _rollout(rng, args)
    useful = int((p_len + r_len).sum())
    algo = algos.AlgoConfig(group_size=8)
    tx = make_optimizer(OptimConfig(lr=1e-6, warmup_steps=0))
    params = init_params(cfg, jax.random.key(args.seed))
    plan, packed = pack_batch(batch["input_ids"], batch["attention_mask"], args.prompt_len, max_tokens=args.max_tokens)
    old_logp, _ = score_tokens(
        cfg,
        params,
        {k: jnp.asarray(v) for k, v in packed.items()},
        None,
        prompt_len=0,
        temperature=1.0,
        micro_batch=plan.rows,
    )
    batch["old_logp"] = np.asarray(old_logp) - 0.01
    batch["truncated"] = r_len >= args.max_new_tokens

    # the padded path as it was: dense scores (or --padded_attention_impl)
    dense_cfg = dataclasses.replace(cfg, attention_impl=args.padded_attention_impl)
    minis, slots = [], 0
    for j in range(args.batch // args.mini_batch):
        idx = np.arange(j * args.mini_batch, (j + 1) * args.mini_batch)
        mb = {k: v[idx] for k, v in batch.items()}
        mplan, mpk = pack_batch(mb["input_ids"], mb["attention_mask"], args.prompt_len, max_tokens=args.max_tokens)
        slots += int(np.prod(mplan.shape))
        pk = {k: v for k, v in mb.items() if k not in ("input_ids", "attention_mask")} | mpk
        minis.append(({k: jnp.asarray(v) for k, v in mb.items()}, {k: jnp.asarray(v) for k, v in pk.items()}, mplan))

    def update(packed_layout: bool):
        state = TrainState(
            step=jnp.int32(0), params=params, opt_state=tx.init(params), knobs=algos.initial_step_state(algo)
        )
        state = jax.tree.map(jnp.copy, state)
        jax.block_until_ready(state)
        t0 = time.perf_counter()
        losses = []
        for mb, pk, mplan in minis:
            kw = dict(algo_cfg=algo, tx=tx, temperature=1.0, prompt_len=args.prompt_len)
            if packed_layout:
                state, m = train_step(state, pk, jax.random.key(0), model_cfg=cfg, micro_batch=mplan.rows, **kw)
            else:
                state, m = train_step(
                    state, mb, jax.random.key(0), model_cfg=dense_cfg, micro_batch=args.micro_batch, **kw
                )
            losses.append(m["loss"])
        jax.block_until_ready(state.params)
        return time.perf_counter() - t0, [float(x) for x in losses], state.params

    times = {"padded": [], "packed": []}
    results = {}
    for name in ("packed", "padded"):
        results[name] = update(name == "packed")  # warm-up: compiles
        for _ in range(args.repeats):
            times[name].append(update(name == "packed")[0])
    (_, loss_pk, params_pk), (_, loss_pd, params_pd) = results["packed"], results["padded"]
    param_diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(params_pk), jax.tree.leaves(params_pd), strict=True)
    )
    shapes = set()
    for _ in range(20):  # 20 steps of fresh batches: the distinct packed shapes are the compilations
        p, r = _lengths(rng, args.batch, args)
        shapes.add(("score",) + plan_packing(p + r, max_tokens=args.max_tokens).shape)
        for j in range(args.batch // args.mini_batch):
            sl = slice(j * args.mini_batch, (j + 1) * args.mini_batch)
            shapes.add(("update",) + plan_packing(p[sl] + r[sl], max_tokens=args.max_tokens).shape)
    # model FLOPs of the useful tokens: 6 x params per token + causal attention 6 x layers x heads x head_dim x
    # the sequence's length per token (half of PaLM's 12 x ... x T, Chowdhery et al. 2022 app. B: causal)
    seq = p_len + r_len
    flops = float(
        6 * cfg.num_params() * useful + 6 * cfg.num_layers * cfg.num_heads * cfg.head_dim * float((seq**2).sum())
    )
    t_pk, t_pd = min(times["packed"]), min(times["padded"])
    mfu = {}
    if args.peak_flops > 0:
        mfu = {"packed_mfu": flops / t_pk / args.peak_flops, "padded_mfu": flops / t_pd / args.peak_flops}
    return {
        "model": args.preset
        or f"{args.layers} layers x {args.width} wide, {args.heads}/{args.kv_heads} heads, vocab {args.vocab}",
        "dtype": args.dtype,
        "attention_impl": {"packed": args.attention_impl, "padded": args.padded_attention_impl},
        "rows": args.batch,
        "mini_batches": len(minis),
        "max_new_tokens": args.max_new_tokens,
        "response_len_mean": float(r_len.mean()),
        "response_len_p99": float(np.percentile(r_len, 99)),
        "useful_tokens": useful,
        "update_slots_per_useful_token": round(slots / useful, 4),
        "padded_slots_per_useful_token": round(args.batch * (args.prompt_len + args.max_new_tokens) / useful, 4),
        "packed_update_s": round(min(times["packed"]), 3),
        "padded_update_s": round(min(times["padded"]), 3),
        "update_speedup_vs_padded": round(t_pd / t_pk, 3),
        "packed_useful_tokens_per_s": useful / t_pk,
        "padded_useful_tokens_per_s": useful / t_pd,
        "model_flops_per_update": flops,
        **mfu,
        "max_abs_loss_diff": max(abs(a - b) for a, b in zip(loss_pk, loss_pd, strict=True)),
        "max_abs_param_diff": param_diff,
        "packed_shapes_20_steps": len({s for s in shapes if s[0] == "update"}),
        "scoring_shapes_20_steps": len({s for s in shapes if s[0] == "score"}),
        "times": times,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(ap)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    out = run_update(args)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:32s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Paper-scale updates on the CPU: packed (token-budget micro-batches, blockwise attention) vs padded rows.

    python scripts/bench_update_scale.py [--json] [--repeats 3] [--max_new_tokens 2048] [--prompt_len 512]
        [--vocab 151936]

One rollout batch with long-tailed response lengths (the quantiles of an exponential of mean
``max_new_tokens / 8``, clipped at ``max_new_tokens``; prompts of ``prompt_len / 2 .. prompt_len`` tokens)
goes through one full update (every mini-batch, real optimizer) three ways in the same process, from the
same state:

- padded as before packing: every row ``prompt_len + max_new_tokens`` slots, ``--micro_batch`` rows per
  forward/backward, the dense attention formula (``--padded_attention_impl``);
- sorted: pad to the longest row of each micro-batch, the fair padded baseline. Each mini-batch's rows are
  sorted by length (prompt + response, longest first) and cut into micro-batches of ``--micro_batch`` rows,
  each trimmed to its longest prompt and longest response (rounded up to a multiple of 64, ours: bounds the
  compilations), with the packed path's attention (``--attention_impl``); the gradients of the micro-batches
  are accumulated on the device (one jitted call each) and applied once, with the same loss sums;
- packed: ``train.packing.pack_batch`` with ``--max_tokens`` slots per micro-batch, blockwise attention,
  the output layer at the response slots only.

Wall times exclude compilation (one warm-up update each) and are the best of ``--repeats``, the three paths
alternating. Prints one JSON object (``--json``) with ``update_slots_per_useful_token`` (packed slots
computed per real token), ``padded_slots_per_useful_token``, ``sorted_slots_per_useful_token``,
``*_head_positions_per_response_token`` (positions the vocabulary projection runs at, per response token),
``update_speedup_vs_padded``, ``update_speedup_vs_sorted``, ``max_abs_loss_diff`` (per mini-batch, packed
vs padded; ``max_abs_loss_diff_sorted`` likewise), ``max_abs_param_diff`` after the update, the load average
(``loadavg``, before and after) and ``packed_shapes_20_steps``: the distinct packed shapes (one XLA
compilation each) of 20 steps of fresh batches from the same length distribution (micro-batches, rows,
width, response slots).
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
    ap.add_argument("--vocab", type=int, default=1024, help="vocabulary (Qwen2.5: 151936)")
    ap.add_argument("--batch", type=int, default=32, help="rollout rows (prompts x G)")
    ap.add_argument("--mini_batch", type=int, default=16, help="rows per optimizer update")
    ap.add_argument("--micro_batch", type=int, default=4, help="padded rows per forward/backward")
    ap.add_argument("--prompt_len", type=int, default=64, help="prompt columns; prompts of half to all of it")
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


SORT_ROUND = 64  # the sorted baseline's prompt / response columns: multiples of this (ours: few compilations)


def _round_up(n: int, cap: int) -> int:
    return min(-(-int(n) // SORT_ROUND) * SORT_ROUND, cap)


def sorted_micro_batches(mb: dict, p_len, r_len, *, prompt_len: int, micro_batch: int) -> list[tuple[int, dict]]:
    """The pad-to-longest baseline's micro-batches of one mini-batch (numpy arrays): rows sorted by total
    length, longest first, ``micro_batch`` at a time, each cut to its longest prompt and response columns.
    Returns (prompt columns, arrays) per micro-batch."""
    import numpy as np

    order = np.argsort(-(p_len + r_len), kind="stable")
    r_cols = mb["mask"].shape[1]
    out = []
    for i in range(0, len(order), micro_batch):
        rows = order[i : i + micro_batch]
        pm, rm = _round_up(p_len[rows].max(), prompt_len), _round_up(r_len[rows].max(), r_cols)
        cut = {k: mb[k][rows][:, prompt_len - pm : prompt_len + rm] for k in ("input_ids", "attention_mask")}
        cut |= {k: mb[k][rows][:, :rm] for k in ("old_logp", "adv", "mask")}
        out.append((pm, cut | {"truncated": mb["truncated"][rows]}))
    return out


def sorted_update_fns(cfg, algo, tx):
    """(accumulate one micro-batch's loss sums and gradient, apply the accumulated update) for the sorted
    baseline: the loss of ``train_step_fn`` (``algos.token_loss``: numerator and denominator summed over the
    micro-batches, divided at the end), one jitted call per micro-batch shape."""
    import functools

    import jax
    import jax.numpy as jnp
    import optax

    from jaxrlvr import algos
    from jaxrlvr.train.step import response_logprobs

    @functools.partial(jax.jit, static_argnames=("prompt_len",), donate_argnums=(1,))
    def micro_grad(params, acc, mb, knobs, *, prompt_len):
        def loss(p):
            ids, am = mb["input_ids"], mb["attention_mask"]
            logp, ent = response_logprobs(cfg, p, ids, am, prompt_len, temperature=1.0)
            ent = jax.lax.stop_gradient(ent)
            key = jax.random.key(0)
            num, den, _ = algos.token_loss(
                algo, logp, mb["old_logp"], None, ent, mb["adv"], mb["mask"], key, knobs, truncated_B=mb["truncated"]
            )
            return num, den

        (num, den), g = jax.value_and_grad(loss, has_aux=True)(params)
        return jax.tree.map(jnp.add, acc[0], g), acc[1] + num, acc[2] + den

    @functools.partial(jax.jit, donate_argnums=(0,))
    def apply(state, acc):
        g, num, den = acc
        den = jnp.maximum(den, 1e-8)
        updates, opt_state = tx.update(jax.tree.map(lambda x: x / den, g), state.opt_state, state.params)
        new = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates), opt_state=opt_state)
        return new, num / den

    return micro_grad, apply


def run_update(args) -> dict:
    import dataclasses
    import os

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxrlvr import algos
    from jaxrlvr.models import ModelConfig, init_params
    from jaxrlvr.train.packing import pack_batch, plan_packing, response_width
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
    minis, slots, sorted_slots, head = [], 0, 0, {"packed": 0, "padded": 0, "sorted": 0}
    for j in range(args.batch // args.mini_batch):
        idx = np.arange(j * args.mini_batch, (j + 1) * args.mini_batch)
        mb = {k: v[idx] for k, v in batch.items()}
        mplan, mpk = pack_batch(mb["input_ids"], mb["attention_mask"], args.prompt_len, max_tokens=args.max_tokens)
        slots += int(np.prod(mplan.shape))
        head["packed"] += mpk["targets"].size  # response slots: rows x response_width per micro-batch
        head["padded"] += mb["mask"].size
        pk = {k: v for k, v in mb.items() if k not in ("input_ids", "attention_mask")} | mpk
        srt = sorted_micro_batches(mb, p_len[idx], r_len[idx], prompt_len=args.prompt_len, micro_batch=args.micro_batch)
        sorted_slots += sum(x["input_ids"].size for _, x in srt)
        head["sorted"] += sum(x["mask"].size for _, x in srt)
        srt = [(pm, {k: jnp.asarray(v) for k, v in x.items()}) for pm, x in srt]
        minis.append(
            ({k: jnp.asarray(v) for k, v in mb.items()}, {k: jnp.asarray(v) for k, v in pk.items()}, mplan, srt)
        )
    micro_grad, apply_update = sorted_update_fns(cfg, algo, tx)

    def update(name: str):
        state = TrainState(
            step=jnp.int32(0), params=params, opt_state=tx.init(params), knobs=algos.initial_step_state(algo)
        )
        state = jax.tree.map(jnp.copy, state)
        jax.block_until_ready(state)
        t0 = time.perf_counter()
        losses = []
        for mb, pk, mplan, srt in minis:
            kw = dict(algo_cfg=algo, tx=tx, temperature=1.0, prompt_len=args.prompt_len)
            if name == "packed":
                state, m = train_step(state, pk, jax.random.key(0), model_cfg=cfg, micro_batch=mplan.rows, **kw)
                loss = m["loss"]
            elif name == "padded":
                state, m = train_step(
                    state, mb, jax.random.key(0), model_cfg=dense_cfg, micro_batch=args.micro_batch, **kw
                )
                loss = m["loss"]
            else:  # sorted: pad to each micro-batch's longest row, the packed path's attention
                acc = (jax.tree.map(jnp.zeros_like, state.params), jnp.float32(0), jnp.float32(0))
                for pm, x in srt:
                    acc = micro_grad(state.params, acc, x, state.knobs, prompt_len=pm)
                state, loss = apply_update(state, acc)
            losses.append(loss)
        jax.block_until_ready(state.params)
        return time.perf_counter() - t0, [float(x) for x in losses], state.params

    names = ("packed", "padded", "sorted")
    times = {n: [] for n in names}
    load_before = os.getloadavg()
    results = {n: update(n) for n in names}  # warm-up: compiles
    for _ in range(args.repeats):  # the paths alternate, so a change of load hits all three alike
        for n in names:
            times[n].append(update(n)[0])
    load_after = os.getloadavg()
    (_, loss_pk, params_pk), (_, loss_pd, params_pd) = results["packed"], results["padded"]
    loss_srt, params_srt = results["sorted"][1], results["sorted"][2]

    def param_diff(x, y):
        return max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True))

    shapes = set()
    for _ in range(20):  # 20 steps of fresh batches: the distinct packed shapes are the compilations
        p, r = _lengths(rng, args.batch, args)
        whole = plan_packing(p + r, max_tokens=args.max_tokens)
        shapes.add(("score",) + whole.shape + (response_width(whole, r),))
        for j in range(args.batch // args.mini_batch):
            sl = slice(j * args.mini_batch, (j + 1) * args.mini_batch)
            part = plan_packing(p[sl] + r[sl], max_tokens=args.max_tokens)
            shapes.add(("update",) + part.shape + (response_width(part, r[sl]),))
    # model FLOPs of the useful tokens: 6 x params per token + causal attention 6 x layers x heads x head_dim x
    # the sequence's length per token (half of PaLM's 12 x ... x T, Chowdhery et al. 2022 app. B: causal)
    seq = p_len + r_len
    flops = float(
        6 * cfg.num_params() * useful + 6 * cfg.num_layers * cfg.num_heads * cfg.head_dim * float((seq**2).sum())
    )
    t_pk, t_pd, t_srt = min(times["packed"]), min(times["padded"]), min(times["sorted"])
    n_resp = int(r_len.sum())
    mfu = {}
    if args.peak_flops > 0:
        mfu = {"packed_mfu": flops / t_pk / args.peak_flops, "padded_mfu": flops / t_pd / args.peak_flops}
    return {
        "model": args.preset
        or f"{args.layers} layers x {args.width} wide, {args.heads}/{args.kv_heads} heads, vocab {args.vocab}",
        "dtype": args.dtype,
        "attention_impl": {
            "packed": args.attention_impl,
            "padded": args.padded_attention_impl,
            "sorted": args.attention_impl,
        },
        "prompt_len": args.prompt_len,
        "vocab": args.vocab,
        "rows": args.batch,
        "mini_batches": len(minis),
        "max_new_tokens": args.max_new_tokens,
        "response_len_mean": float(r_len.mean()),
        "response_len_p99": float(np.percentile(r_len, 99)),
        "useful_tokens": useful,
        "update_slots_per_useful_token": round(slots / useful, 4),
        "padded_slots_per_useful_token": round(args.batch * (args.prompt_len + args.max_new_tokens) / useful, 4),
        "sorted_slots_per_useful_token": round(sorted_slots / useful, 4),
        "packed_head_positions_per_response_token": round(head["packed"] / n_resp, 3),
        "padded_head_positions_per_response_token": round(head["padded"] / n_resp, 3),
        "sorted_head_positions_per_response_token": round(head["sorted"] / n_resp, 3),
        "packed_update_s": round(t_pk, 3),
        "padded_update_s": round(t_pd, 3),
        "sorted_update_s": round(t_srt, 3),
        "update_speedup_vs_padded": round(t_pd / t_pk, 3),
        "update_speedup_vs_sorted": round(t_srt / t_pk, 3),
        "packed_useful_tokens_per_s": useful / t_pk,
        "padded_useful_tokens_per_s": useful / t_pd,
        "sorted_useful_tokens_per_s": useful / t_srt,
        "model_flops_per_update": flops,
        **mfu,
        "max_abs_loss_diff": max(abs(a - b) for a, b in zip(loss_pk, loss_pd, strict=True)),
        "max_abs_loss_diff_sorted": max(abs(a - b) for a, b in zip(loss_pk, loss_srt, strict=True)),
        "max_abs_param_diff": param_diff(params_pk, params_pd),
        "max_abs_param_diff_sorted": param_diff(params_pk, params_srt),
        "loadavg": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
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

"""Benchmarks at the papers' rollout shape, scaled to a CPU: ``--part rollout`` (continuous batching in the
sampler against the static loop) and ``--part update`` (packed against padded updates: the options and output of
``scripts/bench_update_scale.py``, to which it hands over).

``--part rollout``: one random model (``--size``), ``--prompts`` x ``--samples`` rows, up to
``--max-new-tokens`` tokens, long-tailed response lengths as in the papers (mean = cap / 8, p99 several
times the mean). The lengths come from a *length oracle*: each row draws a length from a log-normal
(sigma ``--sigma``, mean cap / 8; draws beyond the cap are truncated at it) and a bench-only logits processor
(``Sampler.logits_processor``) forbids EOS before that length and forces it there, so a random model
produces the papers' length profile with real sampling (temperature 1). Three measurements, same model,
prompts and seed, one process, compilation excluded (static: compiled ahead of time, best of
``--static-repeats`` runs; the others: a warm-up run, then best of ``--repeats``):

- static: the whole batch in the static loop (``generate(..., continuous=False)``'s path);
- continuous: the same rows through ``--slots`` slots (``continuous.run``);
- full length: ``2 x --slots`` rows that all run to the cap (EOS forbidden), same slot count.

Prints one JSON object (``--json``): ``rollout_slot_steps_per_useful_token`` (slot-steps, counting the
first token of a row as one, per generated token), ``rollout_speedup_vs_static`` (useful tokens/s over the
static loop's), ``useful_tps_ratio_vs_full_length`` (useful tokens/s over full-length tokens/s), plus the
raw numbers. Usage: ``python scripts/bench_scale.py --part rollout --json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from jaxrlvr.models import ModelConfig, init_params  # noqa: E402
from jaxrlvr.sampling import continuous, prepare_params  # noqa: E402
from jaxrlvr.sampling.sampler import setup_call  # noqa: E402

SIZES = {  # 4 decoder layers; "tiny" is models.config's preset
    "tiny": dict(hidden_size=128, intermediate_size=256, num_heads=4, num_kv_heads=2, head_dim=32, vocab_size=512),
    "small": dict(hidden_size=256, intermediate_size=768, num_heads=4, num_kv_heads=2, head_dim=64, vocab_size=2048),
}
EOS = 1
PAD = 0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class ForceLength:
    """Bench-only logits processor (the length oracle): row ``r`` ends with EOS exactly at token index
    ``lengths[r] - 1``, never before (rows with a length beyond the cap run to it, truncated)."""

    lengths: tuple[int, ...]
    eos: int = EOS

    def __call__(self, logits_BV, rows_B, steps_B):
        table = jnp.asarray(self.lengths, jnp.int32)
        end_B = jnp.take(table, rows_B, mode="clip")
        is_eos = jnp.arange(logits_BV.shape[-1])[None, :] == self.eos
        force = (steps_B == end_B - 1)[:, None]
        logits = jnp.where(is_eos, -1e9, logits_BV)  # no EOS before the drawn length
        return jnp.where(force, jnp.where(is_eos, 0.0, -1e9), logits)


def draw_lengths(rng, rows: int, cap: int, sigma: float) -> np.ndarray:
    """Log-normal lengths with mean ``cap / 8`` (before truncation at the cap), at least 1."""
    mu = np.log(cap / 8) - sigma**2 / 2
    return np.maximum(np.round(rng.lognormal(mu, sigma, rows)), 1).astype(np.int64)


def _timed(fn, repeats: int):
    out = fn()  # warm-up: compilation
    jax.block_until_ready(out)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t)
    return out, best


def _static_timed(sampler, ip, *args, repeats: int):
    """The static loop (prefill + decode jits) compiled ahead of time, then timed (best of ``repeats``): its
    runs are long, so no warm-up run is spent on compilation (a warm-up execution decodes no step)."""
    pre = sampler._jit("prefill", ip).lower(sampler, ip, *args).compile()
    cache, state = jax.eval_shape(lambda *a: sampler.prefill_impl(ip, *a), *args)
    dec = sampler._jit("decode", ip).lower(sampler, ip, cache, state).compile()
    cache, state = pre(ip, *args)  # warm-up execution: every row marked done, so the loop runs no step
    jax.block_until_ready(dec(ip, cache, {**state, "done": jnp.ones_like(state["done"])}))
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out, cache = dec(ip, *pre(ip, *args))
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t)
        del cache
    return out, best


def bench_rollout(args) -> dict:
    cfg = ModelConfig(
        num_layers=4,
        rope_theta=1e4,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        name=f"bench-{args.size}",
        **SIZES[args.size],
    )
    params = init_params(cfg, jax.random.key(0))
    ip = prepare_params(cfg, params)
    rng = np.random.default_rng(args.seed)
    n, g = args.max_new_tokens, args.samples
    prompts = [rng.integers(2, cfg.vocab_size, int(rng.integers(16, 49))).tolist() for _ in range(args.prompts)]
    rows = len(prompts) * g
    drawn = draw_lengths(rng, rows, n, args.sigma)
    lengths = np.minimum(drawn, n)

    def sampler_for(oracle, prompt_list):
        return setup_call(
            cfg,
            prompt_list,
            max_new_tokens=n,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            greedy=False,
            num_samples=g,
            eos_ids=(EOS,),
            pad_id=PAD,
            seed=args.seed,
            logits_processor=oracle,
        )

    sampler, ids, lens, key, eos = sampler_for(ForceLength(tuple(int(x) for x in drawn)), prompts)

    log(f"rollout: {args.size} model, {rows} rows, cap {n}, {args.slots} slots; static loop ...")
    static_out, t_static = _static_timed(sampler, ip, ids, lens, key, eos, repeats=args.static_repeats)
    got = np.asarray(static_out.lengths)[:rows]
    assert np.array_equal(got, lengths), "the length oracle did not set the lengths"
    useful = int(got.sum())

    log("continuous ...")
    stats = {}

    def run_cb_on(smp, *a):
        return continuous.run(smp, ip, *a, num_slots=args.slots, min_slots=args.min_slots)

    def run_cb():
        out, stats["s"] = run_cb_on(sampler, ids, lens, key, eos)
        return out

    cb_out, t_cb = _timed(run_cb, args.repeats)
    st = stats["s"]
    same = bool(np.array_equal(np.asarray(cb_out.tokens)[:rows], np.asarray(static_out.tokens)[:rows]))

    log("full length ...")
    full_rows = 2 * args.slots
    full_prompts = [prompts[i % len(prompts)] for i in range(-(-full_rows // g))]
    fs, fids, flens, fkey, feos = sampler_for(ForceLength((n + 1,) * full_rows), full_prompts)
    full_out, t_full = _timed(lambda: run_cb_on(fs, fids, flens, fkey, feos)[0], args.repeats)
    full_tokens = int(np.asarray(full_out.lengths).sum())
    assert full_tokens == len(full_prompts) * g * n

    static_slot_steps = int(ids.shape[0] * g * got.max())  # every (padded) row, for the longest row's steps
    return {
        "part": "rollout",
        "rollout_slot_steps_per_useful_token": round((st.slot_steps + rows) / useful, 3),
        "rollout_speedup_vs_static": round(t_static / t_cb, 2),
        "useful_tps_ratio_vs_full_length": round((useful / t_cb) / (full_tokens / t_full), 3),
        "static_slot_steps_per_useful_token": round(static_slot_steps / useful, 3),
        "useful_tokens_per_s": round(useful / t_cb, 1),
        "static_useful_tokens_per_s": round(useful / t_static, 1),
        "full_length_tokens_per_s": round(full_tokens / t_full, 1),
        "same_tokens_as_static": same,
        "rows": rows,
        "slots": args.slots,
        "min_slots": args.min_slots,
        "max_new_tokens": n,
        "length_mean": round(float(got.mean()), 1),
        "length_p99_over_mean": round(float(np.percentile(got, 99) / got.mean()), 2),
        "length_max": int(got.max()),
        "truncated_rows": int((drawn >= n).sum()),
        "rounds": st.rounds,
        "compactions": st.compactions,
        "decode_steps": st.decode_steps,
        "seconds": {"static": round(t_static, 3), "continuous": round(t_cb, 3), "full_length": round(t_full, 3)},
        "model": {"size": args.size, "layers": cfg.num_layers, "hidden": cfg.hidden_size, "vocab": cfg.vocab_size},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible, {jax.default_backend()}",
    }


def bench_update(argv) -> None:
    """The update part: ``scripts/bench_update_scale.py`` with the remaining arguments."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import bench_update_scale

    return bench_update_scale.main(argv)


PARTS = {"rollout": bench_rollout, "update": bench_update}


def main(argv=None):
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--part", choices=sorted(PARTS), required=True)
    known, rest = first.parse_known_args(argv)
    if known.part == "update":
        return bench_update(rest)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=sorted(PARTS), required=True)
    ap.add_argument("--json", action="store_true", help="print only the JSON object on stdout")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny", help="rollout: model width")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument("--slots", type=int, default=32, help="rollout: decode slots of continuous batching")
    ap.add_argument("--min-slots", type=int, default=1, help="rollout: compact the draining slots down to this")
    ap.add_argument("--sigma", type=float, default=1.0, help="rollout: log-normal sigma of the lengths")
    ap.add_argument("--repeats", type=int, default=3, help="rollout: continuous runs timed (best of)")
    ap.add_argument("--static-repeats", type=int, default=1, help="rollout: static-loop runs timed (best of)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    result = bench_rollout(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())

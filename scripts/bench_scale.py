"""Benchmarks at the papers' rollout shape, scaled to a CPU: ``--part rollout`` (the paged sampler against
equal-memory baselines) and ``--part update`` (packed against padded updates: the options and output of
``scripts/bench_update_scale.py``, to which it hands over).

``--part rollout``: one random model (``--size``), ``--prompts`` x ``--samples`` rows, up to
``--max-new-tokens`` tokens, long-tailed response lengths like the papers' (``--length-dist`` lognormal
(sigma ``--sigma``) or exponential, mean cap / 7, draws beyond the cap truncated at it). The lengths come
from a *length oracle*: a bench-only logits processor (``Sampler.logits_processor``) forbids EOS before a
row's drawn length and forces it there, so a random model produces the length profile with real sampling
(temperature 1). Every path gets the same KV memory, that of ``--kv-slots`` contiguous slots of
``prompt bucket + cap - 1`` positions, and is timed best of the same ``--repeats`` runs after a warm-up
run (compilation excluded), the paths interleaved run by run (so each sees the same load on a shared
machine):

- paged: ``paged.run`` with a pool of that many positions and the training defaults otherwise
  (page size, slot count, refill, compaction);
- contiguous: ``continuous.run`` with ``--kv-slots`` slots (its production compaction floor, 32; and
  again compacting down to 1 slot, as the paged path does on a CPU: ``speedup_vs_contiguous_min_slots_1``);
- static: the static loop in waves of ``--kv-slots`` rows (whole prompts; each row draws its own numbers).

Prints one JSON object (``--json``): ``rows_in_flight_ratio_vs_contiguous`` (mean rows decoding per step
while rows wait, i.e. while the KV memory is what limits them, paged / contiguous; the all-steps means are
reported too, but the drain of the longest rows dominates them), ``kv_positions_read_per_useful``
(positions the paged attention read / positions the live rows attend), ``speedup_vs_equal_memory_static``,
``speedup_vs_contiguous_continuous`` (time ratios), ``rows_equal_static`` (paged and contiguous rows equal
the static waves' token for token),
``production_settings`` (every sampler setting at the training default), plus the raw numbers.
Usage: ``python scripts/bench_scale.py --part rollout --json``.
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
from jaxrlvr.sampling import continuous, paged, prepare_params  # noqa: E402
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


def draw_lengths(rng, rows: int, cap: int, dist: str, sigma: float) -> np.ndarray:
    """Lengths with mean ``cap / 7`` before truncation at the cap (the papers' profile: mean ~1/7 of the
    cap, a long tail), at least 1."""
    mean = cap / 7
    if dist == "lognormal":
        x = rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, rows)
    else:
        x = rng.exponential(mean, rows)
    return np.maximum(np.round(x), 1).astype(np.int64)


def _in_flight(stats) -> float:
    """Mean rows decoding per step over the rounds that started with rows waiting."""
    return stats.waiting_live_slot_steps / max(stats.waiting_decode_steps, 1)


def _interleaved(paths: dict, repeats: int):
    """Each path once to compile (a warm-up run), then ``repeats`` rounds timing every path in turn (so
    that on a shared machine each sees the same load); returns (last outputs, best seconds) per path."""
    outs, best = {}, {}
    for name, fn in paths.items():
        log(f"{name}: warm-up ...")
        outs[name] = jax.block_until_ready(fn())
        best[name] = float("inf")
    for r in range(repeats):
        for name, fn in paths.items():
            log(f"{name}: timed run {r + 1} of {repeats} ...")
            t = time.perf_counter()
            outs[name] = jax.block_until_ready(fn())
            best[name] = min(best[name], time.perf_counter() - t)
    return outs, best


def _static_waves(sampler, ip, ids, lens, key, eos, wave_prompts: int):
    """The static loop over the prompts in waves of ``wave_prompts`` (rows keep their ids in the batch);
    returns the waves' tokens and lengths [B, ...] (numpy), concatenated."""
    g = sampler.num_samples
    toks, lengths = [], []
    for lo in range(0, ids.shape[0], wave_prompts):
        w_ids, w_lens = ids[lo : lo + wave_prompts], lens[lo : lo + wave_prompts]
        cache, state = sampler.run_jitted("prefill", ip, ip, w_ids, w_lens, key, eos, np.int32(lo * g))
        out, cache = sampler.decode(ip, cache, state)
        del cache
        toks.append(out.tokens)
        lengths.append(out.lengths)
    return jnp.concatenate(toks), jnp.concatenate(lengths)


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
    if args.kv_slots % g:
        raise SystemExit(
            f"error: --kv-slots {args.kv_slots} must be a multiple of --samples {g} (whole prompts per wave)"
        )
    prompts = [rng.integers(2, cfg.vocab_size, int(rng.integers(16, 49))).tolist() for _ in range(args.prompts)]
    rows = len(prompts) * g
    drawn = draw_lengths(rng, rows, n, args.length_dist, args.sigma)
    lengths = np.minimum(drawn, n)
    sampler, ids, lens, key, eos = setup_call(
        cfg,
        prompts,
        max_new_tokens=n,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        greedy=False,
        num_samples=g,
        eos_ids=(EOS,),
        pad_id=PAD,
        seed=args.seed,
        logits_processor=ForceLength(tuple(int(x) for x in drawn)),
    )
    t = ids.shape[1]
    kv_positions = args.kv_slots * (t + n - 1)  # the contiguous layout's KV memory, shared by every path
    pool_pages = kv_positions // args.page_size
    log(f"rollout: {args.size} model, {rows} rows, cap {n}, KV memory of {args.kv_slots} contiguous slots")

    stats = {}

    def run_paged():
        out, stats["paged"] = paged.run(
            sampler, ip, ids, lens, key, eos, pool_pages=pool_pages, page_size=args.page_size, min_slots=args.min_slots
        )
        return out

    def run_contiguous():
        out, stats["contiguous"] = continuous.run(sampler, ip, ids, lens, key, eos, num_slots=args.kv_slots)
        return out

    paths = {
        "paged": run_paged,
        "contiguous": run_contiguous,
        "contiguous_min_slots_1": lambda: continuous.run(
            sampler, ip, ids, lens, key, eos, num_slots=args.kv_slots, min_slots=1
        )[0],
        "static_waves": lambda: _static_waves(sampler, ip, ids, lens, key, eos, args.kv_slots // g),
    }
    outs, best = _interleaved(paths, args.repeats)
    pg_out, cb_out, (st_tok, st_len) = outs["paged"], outs["contiguous"], outs["static_waves"]
    t_paged, t_contig, t_contig1, t_static = (
        best[k] for k in ("paged", "contiguous", "contiguous_min_slots_1", "static_waves")
    )
    got = np.asarray(pg_out.lengths)[:rows]
    assert np.array_equal(got, lengths), "the length oracle did not set the lengths"
    useful = int(got.sum())
    st_tok = np.asarray(st_tok)[:rows]
    same = bool(
        np.array_equal(np.asarray(pg_out.tokens)[:rows], st_tok)
        and np.array_equal(np.asarray(cb_out.tokens)[:rows], st_tok)
        and np.array_equal(np.asarray(st_len)[:rows], got)
    )
    ps, cs = stats["paged"], stats["contiguous"]
    production = args.page_size == paged.PAGE_SIZE and args.min_slots is None
    return {
        "part": "rollout",
        "rows_in_flight_ratio_vs_contiguous": (  # None when no row ever waited for the contiguous slots
            round(_in_flight(ps) / _in_flight(cs), 2) if cs.waiting_decode_steps else None
        ),
        "kv_positions_read_per_useful": round(ps.kv_read / ps.kv_needed, 3),
        "speedup_vs_equal_memory_static": round(t_static / t_paged, 2),
        "speedup_vs_contiguous_continuous": round(t_contig / t_paged, 2),
        "speedup_vs_contiguous_min_slots_1": round(t_contig1 / t_paged, 2),
        "rows_equal_static": same,
        "production_settings": production,
        "contiguous_kv_positions_read_per_useful": round(cs.kv_read / cs.kv_needed, 3),
        "rows_in_flight_while_rows_wait": {
            "paged": round(_in_flight(ps), 1),
            "contiguous": round(_in_flight(cs), 1),
        },
        "rows_in_flight_mean_all_steps": {
            "paged": round(ps.live_slot_steps / ps.decode_steps, 1),
            "contiguous": round(cs.live_slot_steps / cs.decode_steps, 1),
        },
        "paged_slot_steps_per_useful_token": round((ps.slot_steps + rows) / useful, 3),
        "contiguous_slot_steps_per_useful_token": round((cs.slot_steps + rows) / useful, 3),
        "useful_tokens_per_s": {
            "paged": round(useful / t_paged, 1),
            "contiguous": round(useful / t_contig, 1),
            "static_waves": round(useful / t_static, 1),
        },
        "seconds": {
            "paged": round(t_paged, 3),
            "contiguous": round(t_contig, 3),
            "contiguous_min_slots_1": round(t_contig1, 3),
            "static_waves": round(t_static, 3),
        },
        "repeats": args.repeats,
        "kv_memory_positions": kv_positions,
        "paged": {
            "page_size": args.page_size,
            "pool_pages": pool_pages,
            "slots": ps.slots,
            "min_slots": paged.default_min_slots(jax.default_backend()) if args.min_slots is None else args.min_slots,
            "peak_pages": ps.peak_pages,
            "preemptions": ps.preemptions,
            "rounds": ps.rounds,
            "compactions": ps.compactions,
            "decode_steps": ps.decode_steps,
        },
        "contiguous": {
            "slots": cs.slots,
            "min_slots": continuous.MIN_SLOTS,
            "rounds": cs.rounds,
            "decode_steps": cs.decode_steps,
        },  # fmt: skip
        "rows": rows,
        "prompt_bucket": t,
        "max_new_tokens": n,
        "length_dist": args.length_dist,
        "seed": args.seed,
        "length_mean": round(float(got.mean()), 1),
        "length_p99_over_mean": round(float(np.percentile(got, 99) / got.mean()), 2),
        "length_max": int(got.max()),
        "truncated_rows": int((drawn >= n).sum()),
        "model": {"size": args.size, "layers": cfg.num_layers, "hidden": cfg.hidden_size, "vocab": cfg.vocab_size},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible, {jax.default_backend()}",
        "load_avg": [round(x, 2) for x in os.getloadavg()],
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
    ap.add_argument(
        "--kv-slots", type=int, default=continuous.MIN_SLOTS, help="rollout: KV memory of this many contiguous slots"
    )
    ap.add_argument(
        "--page-size",
        type=int,
        default=paged.PAGE_SIZE,
        help="rollout: paged; not the default: production_settings false",
    )
    ap.add_argument(
        "--min-slots",
        type=int,
        default=None,
        help="rollout: paged compaction floor (default: the platform's; as --page-size)",
    )
    ap.add_argument("--length-dist", choices=("lognormal", "exponential"), default="lognormal")
    ap.add_argument("--sigma", type=float, default=1.0, help="rollout: log-normal sigma of the lengths")
    ap.add_argument("--repeats", type=int, default=2, help="rollout: timed runs of every path (best of)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    result = bench_rollout(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())

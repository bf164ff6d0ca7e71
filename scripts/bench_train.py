"""Training throughput of the demo model on this machine: phase shares of an RL step and tokens/s.

    python scripts/bench_train.py [--steps 30] [--write BENCHMARKS.md]

Runs the demo config (no SFT, no held-out eval) for ``--steps`` RL steps, drops the first 3 (compilation),
and reports mean seconds per phase (rollout incl. verification, old-log-prob scoring, updates), their share,
rollout and update tokens/s. Baseline in the same run: a plain cross-entropy forward + backward + AdamW step
(`train.sft.sft_step`) on a batch of the same shape, so ``update / baseline`` is the cost of the RL loss and
bookkeeping over the bare model step.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

SECTION = "## Training throughput (CPU, demo model)"


def replace_section(path: pathlib.Path, title: str, body: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{title}\n\n{body.strip()}\n"
    if title in text:
        start = text.index(title)
        nxt = text.find("\n## ", start + len(title))
        text = text[:start] + block + ("\n" + text[nxt + 1 :] if nxt != -1 else "")
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--write", default=None, help="update this markdown file's section")
    args = ap.parse_args(argv)

    import jax
    import numpy as np
    import optax

    from configs import demo
    from jaxrlvr.data.tokenizer import CharTokenizer
    from jaxrlvr.train.loop import build_model, train
    from jaxrlvr.train.metrics import read_metrics
    from jaxrlvr.train.sft import sft_step

    c = demo.get_config()
    c.sft.steps = 0
    c.data.heldout = 0
    c.train.num_steps = args.steps
    c.train.dump_rollouts_every = 0
    c.checkpoint.every = 0
    c.log.progress = False
    c.log.plots = False
    c.log.tensorboard = False
    with tempfile.TemporaryDirectory() as wd:
        train(c, wd, log=lambda *_: None)
        recs = read_metrics(pathlib.Path(wd) / "metrics.jsonl")[3:]

    def mean(k):
        return float(np.mean([r[k] for r in recs]))

    phases = {k: mean(f"time_{k}") for k in ("rollout", "score", "update")}
    step_t = mean("time_step")
    resp_tokens = mean("response_length_mean") * c.rollout.prompts_per_step * c.rollout.group_size

    # Baseline: plain cross-entropy step on the same [rows, P + R] batch, same model, same micro-batch.
    model_cfg, params = build_model(c, CharTokenizer(), jax.random.key(0))
    rows = c.train.mini_batch_prompts * c.rollout.group_size
    length = c.rollout.max_prompt_len + c.rollout.max_new_tokens
    rng = np.random.default_rng(0)
    batch = {
        "input_ids": rng.integers(5, model_cfg.vocab_size, (rows, length)).astype(np.int32),
        "attention_mask": np.ones((rows, length), np.int32),
        "loss_mask": np.concatenate(
            [np.zeros((rows, c.rollout.max_prompt_len)), np.ones((rows, c.rollout.max_new_tokens))], 1
        ).astype(np.float32),
    }
    tx = optax.adamw(1e-4)
    opt = tx.init(params)
    params, opt, loss = sft_step(model_cfg, tx, params, opt, batch)
    jax.block_until_ready(loss)
    n = 10
    t0 = time.perf_counter()
    for _ in range(n):
        params, opt, loss = sft_step(model_cfg, tx, params, opt, batch)
    jax.block_until_ready(loss)
    base = (time.perf_counter() - t0) / n
    mini_batches = c.rollout.prompts_per_step // c.train.mini_batch_prompts * c.train.ppo_epochs
    upd_per_mb = phases["update"] / mini_batches

    result = {
        "steps_measured": len(recs),
        "step_s": step_t,
        "phase_s": phases,
        "phase_share": {k: v / step_t for k, v in phases.items()},
        "response_tokens_per_step": resp_tokens,
        "rollout_tokens_per_s": resp_tokens / phases["rollout"],
        "update_tokens_per_s": resp_tokens * c.train.ppo_epochs / phases["update"],
        "baseline_ce_step_s": base,
        "update_minibatch_s": upd_per_mb,
        "update_over_baseline": upd_per_mb / base,
    }
    print(json.dumps(result, indent=2))
    if args.write:
        body = f"""Command: `python scripts/bench_train.py --steps {args.steps} --write BENCHMARKS.md` (CPU, 2 cores).
Demo model (2 layers, width 128, char vocab {model_cfg.vocab_size}); 16 prompts x 8 samples per step, up to
{c.rollout.max_new_tokens} new tokens, 2 mini-batches of 64 sequences per step; first 3 steps (compilation) dropped.

| phase | s / step | share |
|---|---:|---:|
| rollout (sampling + verification) | {phases["rollout"]:.3f} | {100 * phases["rollout"] / step_t:.0f}% |
| old log-probs + advantages | {phases["score"]:.3f} | {100 * phases["score"] / step_t:.0f}% |
| updates | {phases["update"]:.3f} | {100 * phases["update"] / step_t:.0f}% |
| whole step | {step_t:.3f} | |

Rollout: {result["rollout_tokens_per_s"]:,.0f} response tokens/s; update: {result["update_tokens_per_s"]:,.0f}
response tokens/s. Baseline in the same run: a plain cross-entropy forward + backward + AdamW step on a batch
of the same shape takes {base * 1e3:.0f} ms; one RL mini-batch update takes {upd_per_mb * 1e3:.0f} ms
(ratio {result["update_over_baseline"]:.2f}x: the clipped loss, entropy, metrics and the NaN guard)."""
        replace_section(pathlib.Path(args.write), SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

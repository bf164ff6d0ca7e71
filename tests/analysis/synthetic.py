"""A small synthetic run directory in the trainer's documented format (no trainer needed).

Metrics follow a rising stage (entropy decays exponentially with time constant ``tau``, accuracy rises) and
then a plateau; rollout dumps have U-shaped positional entropy, lower entropy for positive samples, token
probabilities that move up in positive and down in negative samples, and texts with known quality issues.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from jaxrlvr.analysis import RolloutDump, dump_path

TEXTS_OK = [
    "First, 12 + 30 = 42. Therefore the answer is \\boxed{42}.",
    "Let me check: 7 * 6 = 42, so the answer is \\boxed{42}.",
    "Wait, the sum of the digits is 6. Thus x = 6 and \\boxed{6}.",
    "We solve the equation 2x = 8, hence x = 4. \\boxed{4}",
]
TEXTS_BAD = [
    "the answer is 42",  # format violation (no boxed answer)
    "答案是 \\boxed{42}",  # language mixing
    "so so so so so so so so so so so so so so so so so so so so so so \\boxed{1}",  # repetition
    "Hmm, maybe 5. \\boxed{5}",
]


def make_dump(step: int, *, prompts=4, group=4, p_len=5, r_len=24, seed=0, shift_scale=0.02) -> RolloutDump:
    rng = np.random.default_rng([seed, step])
    b = prompts * group
    lengths = rng.integers(8, r_len + 1, b)
    lengths[0] = r_len  # one full-length (truncated) response
    mask = (np.arange(r_len)[None, :] < lengths[:, None]).astype(np.int32)
    correct = rng.random(b) < 0.5
    correct[0], correct[1] = True, False
    rel = np.arange(r_len)[None, :] / np.maximum(lengths[:, None] - 1, 1)
    u_shape = 0.3 + 1.2 * (rel - 0.5) ** 2 * 4  # high at both ends
    entropy = (u_shape * np.where(correct, 0.7, 1.0)[:, None] + 0.05 * rng.random((b, r_len))).astype(np.float32)
    old_logp = np.log(rng.uniform(0.05, 0.99, (b, r_len))).astype(np.float32)
    sign = np.where(correct, 1.0, -1.0)[:, None]
    dp = sign * np.abs(rng.normal(0, shift_scale, (b, r_len)))
    dp[:, ::7] *= 8  # a few tokens move a lot
    new_p = np.clip(np.exp(old_logp) + dp, 1e-4, 1.0)
    new_logp = np.log(new_p).astype(np.float32)
    rewards = np.where(correct, 1.0, -1.0).astype(np.float32)
    r_pg = rewards.reshape(prompts, group)
    adv_group = ((r_pg - r_pg.mean(1, keepdims=True)) / (r_pg.std(1, ddof=1, keepdims=True) + 1e-6)).reshape(-1)
    adv = (adv_group[:, None] * mask).astype(np.float32)
    texts = [(TEXTS_OK if c else TEXTS_BAD)[i % 4] for i, c in enumerate(correct)]
    p_mask = np.ones((b, p_len), np.int32)
    p_mask[:, :2] = 0
    return RolloutDump(
        step=step,
        group_size=group,
        prompt_ids=(rng.integers(3, 100, (b, p_len)) * p_mask).astype(np.int32),
        prompt_mask=p_mask,
        tokens=(rng.integers(3, 100, (b, r_len)) * mask).astype(np.int32),
        mask=mask,
        old_logp=np.where(mask == 1, old_logp, 0.0).astype(np.float32),
        entropy=np.where(mask == 1, entropy, 0.0).astype(np.float32),
        adv=adv,
        new_logp=np.where(mask == 1, new_logp, 0.0).astype(np.float32),
        rewards=rewards,
        correct=correct,
        adv_group=adv_group.astype(np.float32),
        lengths=lengths.astype(np.int32),
        truncated=lengths >= r_len,
        texts=texts,
    )


def curves(n: int, *, tau: float = 15.0, noise: float = 0.0, seed: int = 0):
    """Entropy ``0.3 + 0.9 exp(-t/tau)`` and accuracy ``0.75 - 0.5 exp(-t/tau)`` (+ Gaussian noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    e = 0.3 + 0.9 * np.exp(-t / tau) + noise * rng.normal(size=n)
    a = 0.75 - 0.5 * np.exp(-t / tau) + 1.5 * noise * rng.normal(size=n)
    return e, a


def make_run(workdir, *, steps: int = 60, dump_every: int = 20, tau: float = 10.0, eval_steps=()) -> pathlib.Path:
    wd = pathlib.Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    e, a = curves(steps, tau=tau, noise=0.01, seed=1)
    with open(wd / "metrics.jsonl", "w") as f:
        for i in range(steps):
            rec = {
                "step": i + 1,
                "entropy": float(e[i]),
                "accuracy": float(a[i]),
                "entropy_pos": float(0.8 * e[i]),
                "entropy_neg": float(1.1 * e[i]),
                "reward": float(2 * a[i] - 1),
                "log_ppl": float(0.5 * e[i]),
                "response_length_mean": 20.0,
                "loss": None,  # the trainer writes non-finite values as null
            }
            f.write(json.dumps(rec) + "\n")
    (wd / "summary.json").write_text(json.dumps({"heldout_accuracy_before": 0.2, "heldout_accuracy_after": 0.6}))
    (wd / "config.json").write_text(json.dumps({"rollout": {"temperature": 1.0, "group_size": 4}}))
    for s in range(dump_every, steps + 1, dump_every):
        make_dump(s).save(dump_path(wd, s))
    for s in eval_steps:
        d = wd / "eval" / f"step_{s:06d}"
        d.mkdir(parents=True)
        i = s - 1
        summ = [
            {"benchmark": "math500", "acc_at_n": float(a[i])},
            {"benchmark": "aime24", "acc_at_n": float(0.1 + 0.2 * a[i] ** 2)},
        ]
        (d / "summary.json").write_text(json.dumps({"summaries": summ}))
    return wd

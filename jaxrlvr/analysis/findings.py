"""What the report says about a run: figure captions built from the measured numbers, each paper's claim
stated separately with whether this run agrees, the glossary of every column, and the model-based sections
(Eq. 4 gradient-norm share, Eq. 6 performance impact) computed from a rollout dump and the run's checkpoint.

A caption never asserts a paper's conclusion: it says what this run measured, then "Paper: ..." and
"This run: agrees / does not agree / cannot tell (why)".
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

DECOMPOSING = "Deng et al. 2025, Decomposing the Entropy-Performance Exchange"

# Every column of the report's tables, explained (key or label -> meaning).
GLOSSARY = {
    "step": "RL step whose rollout batch the dump holds",
    "acc": "share of the dump's responses the verifier marked correct",
    "H pos": "mean token entropy (nats) of correct (positive) responses, at the rollout temperature",
    "H neg": "mean token entropy (nats) of incorrect (negative) responses",
    "|shift|<thr": "share of response tokens whose probability moved by less than the threshold "
    "(|p_new - p_old|) in the step's updates",
    "cov(logp,A)": "covariance over tokens of the rollout log-prob and the (shaped) advantage",
    "AUROC": "how well a response's mean token log-prob ranks correct above incorrect responses (0.5 = chance)",
    "lnPPL corr": "mean log-perplexity (minus the mean token log-prob) of correct responses",
    "lnPPL inc": "mean log-perplexity of incorrect responses",
    "quality issue": "share of responses with a format violation, language mixing or repetition",
    "distinct-2": "distinct word bigrams / all bigrams within a prompt's group of responses (diversity)",
    "Self-BLEU": "mean BLEU of each response of a group against the others (higher = less diverse)",
    "plateau_start_step": "first step of the plateau stage found by jaxrlvr.analysis.detect_plateau_start "
    "(None: not reached or run too short)",
    "final_entropy_ema / final_accuracy_ema": "last value of the EMA-smoothed rollout entropy / accuracy",
    "heldout_accuracy_before / _after": "held-out accuracy before and after RL (synthetic source), from summary.json",
    "pooled_dumps": "the dumps whose tokens the distribution figures pool",
    "pooled_auroc / pooled_small_shift_share": "AUROC and |shift| < threshold share over the pooled dumps",
    "num_steps / num_dumps": "RL steps in metrics.jsonl / rollout dumps found",
}


def _verdict(ok: bool | None, why: str = "") -> str:
    if ok is None:
        return f"This run: cannot tell{f' ({why})' if why else ''}."
    return "This run: agrees." if ok else "This run: does not agree."


def _f(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3g}"


def _first_last(v: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(v)
    return (float(v[ok][0]), float(v[ok][-1])) if ok.sum() >= 2 else (math.nan, math.nan)


def captions(a) -> dict[str, str]:
    """``{figure file: caption}`` for a ``report.RunAnalysis``: measured, then the paper's claim, then the
    verdict; pooled figures name the dumps they pool."""
    c, out = a.curves, {}
    beta = a.options.beta
    e0, e1 = _first_last(c["entropy_ema"])
    q0, q1 = _first_last(c["accuracy_ema"])
    plateau = f"; the dashed line marks the detected plateau start (step {a.plateau_step})" if a.plateau_step else ""
    ok = None if not (np.isfinite(e0) and np.isfinite(q0)) else (e1 < e0 and q1 > q0)
    out["curves.png"] = (
        f"Token entropy and rollout accuracy per RL step (faint: raw; solid: EMA with weight {beta} on the "
        f"previous value). Measured: entropy {_f(e0)} -> {_f(e1)}, accuracy {_f(q0)} -> {_f(q1)}{plateau}. "
        f"Paper ({DECOMPOSING}): entropy falls while accuracy rises (rising stage), then both flatten "
        f"(plateau stage). {_verdict(ok, 'fewer than 2 steps')}"
    )
    p0, p1 = _first_last(c["entropy_pos_ema"])
    n0, n1 = _first_last(c["entropy_neg_ema"])
    ok = None if not (np.isfinite(p0) and np.isfinite(n0)) else (n0 - n1) > (p0 - p1)
    out["entropy_pos_neg.png"] = (
        f"Entropy of positive (correct) and negative samples (EMA {beta}). Measured: positive {_f(p0)} -> "
        f"{_f(p1)}, negative {_f(n0)} -> {_f(n1)}. Paper ({DECOMPOSING}): in the rising stage the entropy drop "
        f"comes mostly from negative samples. {_verdict(ok, 'too few steps with both kinds of samples')}"
    )
    if a.pool is not None:
        pooled = f"Pooled over the dumps of steps {', '.join(map(str, a.pooled_steps))}."
        prof, _ = a.pool.profile("all")
        nb = prof.size
        start, end = prof[0], prof[-1]
        mid = np.nanmean(prof[int(0.3 * nb) : max(int(0.7 * nb), int(0.3 * nb) + 1)])
        ok = None if not np.isfinite([start, end, mid]).all() else bool(start > mid and end > mid)
        out["positional_entropy.png"] = (
            f"Mean token entropy by relative position in the response ({nb} bins), all / positive / negative "
            f"samples. {pooled} Measured (all): first bin {_f(start)}, middle {_f(mid)}, last bin {_f(end)}. "
            f"Paper ({DECOMPOSING}): entropy is U-shaped, higher at the start and the end of a response than in "
            f"the middle. {_verdict(ok, 'empty bins')}"
        )
        lc, li = a.pool.get("log_ppl_correct"), a.pool.get("log_ppl_incorrect")
        ok = None if not (lc.size and li.size) else bool(lc.mean() < li.mean())
        out["ppl_histograms.png"] = (
            f"Left: response log-perplexity of correct vs incorrect responses. Right: the log-PPL of the "
            f"responses behind the {a.options.top_fraction:.0%} of tokens whose probability moved most vs all "
            f"tokens. {pooled} Measured: mean log-PPL correct {_f(lc.mean() if lc.size else math.nan)}, "
            f"incorrect {_f(li.mean() if li.size else math.nan)}. Paper ({DECOMPOSING}, the premise of PPL "
            f"shaping): correct responses have lower perplexity. {_verdict(ok, 'no correct or no incorrect')}"
        )
        sh = a.pool.get("shift_all")
        share = float(np.mean(np.abs(sh) < a.options.shift_threshold)) if sh.size else math.nan
        out["probability_shift.png"] = (
            f"Change p_new - p_old of each sampled token's probability across the step's updates (left), and "
            f"against the token's entropy (right). {pooled} Measured: {_f(share)} of tokens moved by less than "
            f"{a.options.shift_threshold}. Paper ({DECOMPOSING}): most tokens barely move. "
            f"{_verdict(None if not sh.size else share > 0.5)}"
        )
        auc = a.summary.get("pooled_auroc", math.nan)
        auc = math.nan if auc is None else auc
        out["calibration.png"] = (
            f"Mean per-token log-prob of correct vs incorrect responses. {pooled} Measured: AUROC {_f(auc)} of "
            "this confidence for predicting correctness (0.5 = chance). Claim checked (the calibration analyses "
            f"of both papers): confidence separates correct from incorrect responses. "
            f"{_verdict(None if not np.isfinite(auc) else auc > 0.5)}"
        )
    out["dump_metrics.png"] = (
        "Per-dump numbers over training (one point per analysed dump, not pooled): share of tokens that barely "
        "moved, covariance of log-prob and advantage, calibration AUROC, quality issue rates, token "
        "categories, diversity (columns explained in the glossary)."
    )
    return out


# ----------------------------------------------------------------------------------- model-based sections
def _checkpoint_before(workdir: pathlib.Path, step: int) -> pathlib.Path | None:
    """The checkpoint of step ``step - 1`` (the policy that sampled and was updated at ``step``), else the
    latest one."""
    ckpt = workdir / "checkpoints"
    steps = sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) if ckpt.is_dir() else []
    if not steps:
        return None
    return ckpt / str(step - 1 if step - 1 in steps else steps[-1])


def model_sections(run, dump, *, impact_rows: int = 4, impact_per_row: int = 2, impact_k: int = 4) -> dict:
    """Eq. 4 and Eq. 6 on ``dump`` with the run's checkpoint (``{}`` plus a ``note`` when it cannot run).

    Eq. 4: each token's LM-head gradient-norm proxy G_t; the shares of sum G_t from negative samples and from
    the 20% highest-entropy tokens. Eq. 6: the performance impact I_t of ``impact_per_row`` evenly spaced
    tokens in ``impact_rows`` responses (``impact_k`` continuations each; the paper uses 32)."""
    from jaxrlvr.analysis.gradient import gradient_norm_proxy
    from jaxrlvr.analysis.impact import evenly_spaced_positions, performance_impact
    from jaxrlvr.runs import load_params, run_tokenizer

    path = _checkpoint_before(pathlib.Path(run.workdir), int(dump.step))
    if path is None:
        return {"note": "no checkpoints in the run: the Eq. 4 and Eq. 6 sections need the policy's weights"}
    model_cfg, params = load_params(path)
    at = int(dump.step)  # the settings the dump was made with (a resume may have changed config.json)
    temp = float(run.dump_value(at, "rollout.temperature", 1.0))
    clip = (float(run.dump_value(at, "algo.clip_low", 0.2)), float(run.dump_value(at, "algo.clip_high", 0.28)))
    g = gradient_norm_proxy(
        model_cfg, params, dump.prompt_ids, dump.prompt_mask, dump.tokens, dump.mask, dump.adv, dump.old_logp,
        temperature=temp, clip_low=clip[0], clip_high=clip[1],
    )  # fmt: skip
    m = np.asarray(dump.mask) != 0
    gt = np.where(m, g.g, 0.0)
    total = float(gt.sum())
    ent = np.asarray(dump.entropy)
    thr = np.quantile(ent[m], 0.8) if m.any() else math.inf
    out = {
        "checkpoint": f"step {path.name}",
        "dump_step": int(dump.step),
        "grad_share_negative": float(gt[~dump.positive].sum() / total) if total > 0 else math.nan,
        "grad_share_high_entropy": float(gt[m & (ent >= thr)].sum() / total) if total > 0 else math.nan,
        "negative_token_share": float(m[~dump.positive].sum() / max(m.sum(), 1)),
    }
    if dump.answers is None:
        out["impact_note"] = "the dump has no gold answers (an older run): Eq. 6 needs them"
        return out
    tok_spec = run_tokenizer(run.workdir)
    if not tok_spec:
        out["impact_note"] = "the run's config.json names no tokenizer"
        return out
    from jaxrlvr.data.tokenizer import load_tokenizer
    from jaxrlvr.rewards import score_batch

    tokenizer = load_tokenizer(tok_spec)
    rows = [i for i in range(dump.batch_size) if m[i].any()][:impact_rows]
    positions = evenly_spaced_positions(dump.mask, impact_per_row, rows)
    budget = int(np.asarray(dump.tokens).shape[1])
    res = performance_impact(
        model_cfg, params,
        [dump.prompt(i) for i in range(dump.batch_size)],
        [dump.response(i) for i in range(dump.batch_size)],
        list(dump.answers), positions,
        tokenizer=tokenizer,
        score_fn=lambda t, gold: [bool(getattr(r, "correct", r)) for r in score_batch(t, gold, workers=1)],
        k=impact_k, max_new_tokens=budget, response_budget=budget, temperature=temp,
        top_p=float(run.dump_value(at, "rollout.top_p", 1.0)), seed=int(dump.step),
    )  # fmt: skip
    ent_at = ent[res.rows, res.positions]
    high = ent_at >= np.median(ent_at)
    out.update(
        impact_positions=int(res.impact.size),
        impact_k=impact_k,
        impact_mean=float(res.impact.mean()),
        impact_abs_mean=float(np.abs(res.impact).mean()),
        impact_share_nonzero=float(np.mean(res.impact != 0)),
        impact_abs_high_entropy=float(np.abs(res.impact[high]).mean()) if high.any() else math.nan,
        impact_abs_low_entropy=float(np.abs(res.impact[~high]).mean()) if (~high).any() else math.nan,
    )
    return out


MODEL_GLOSSARY = {
    "checkpoint": "the weights used: the checkpoint before the dump's step when kept, else the latest",
    "grad_share_negative": "Eq. 4: share of the summed gradient-norm proxy G_t = |alpha_t| ||e(o_t) - pi_t|| "
    "||h_t|| / T that comes from tokens of incorrect responses",
    "negative_token_share": "share of the dump's tokens that belong to incorrect responses (compare with the "
    "line above: a larger gradient share means negative tokens weigh more per token)",
    "grad_share_high_entropy": "Eq. 4: share of the summed G_t from the 20% highest-entropy tokens",
    "impact_mean / impact_abs_mean": "Eq. 6: mean I_t (and mean |I_t|) = accuracy of continuations after the "
    "sampled token minus after its strongest rival, over the measured positions",
    "impact_share_nonzero": "share of measured positions whose swap changed the continuations' accuracy",
    "impact_abs_high_entropy / _low_entropy": "mean |I_t| of the measured positions above / below their median entropy",
}

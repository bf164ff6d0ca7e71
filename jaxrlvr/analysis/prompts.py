"""Prompt entropy, two meanings.

1. **As Revisiting defines it** (arXiv 2511.05993, App. C.2 / C.3 / F.3): the model's entropy *on the prompts
   themselves* -- "the ratio between the entropy of LLMs on prompts at different training steps and their
   entropy on the same prompts before training" (C.2), in-domain AIME 2024 against out-of-domain IF-Eval
   ("This reduction is more pronounced for prompts from the in-domain AIME 2024 benchmark than for those from
   the out-of-domain IF-Eval benchmark"), and against accuracy, "the proportion of correct responses among 64
   generated responses" (C.3), by Spearman's rank coefficient. :func:`prompt_token_entropy` runs the model
   over each prompt (teacher forcing, temperature 1) and averages the entropy of the next-token distribution
   at every prompt position whose next token is a prompt token (the text does not say which positions; ours:
   the prompt's own tokens, the chat markup included); :func:`prompt_entropy_study` gives the ratios over a
   run's checkpoints and the correlations with the run's periodic evaluations (``eval/step_N/*.samples.jsonl``).
2. **Response entropy grouped by prompt** (ours, from rollout dumps): :func:`prompt_entropy` /
   :func:`prompt_entropy_summary` -- the token-pooled mean entropy of each prompt's G responses, its spread
   and the group accuracy, bucketed by accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BUCKETS = ("acc=0", "0<acc<=0.5", "0.5<acc<1", "acc=1")


def prompt_entropy(dump) -> dict[str, np.ndarray]:
    """[P] arrays for one dump: ``entropy`` (token-pooled over the group), ``spread`` (std over the G
    responses of their mean entropy, non-empty responses only), ``accuracy``."""
    g = int(dump.group_size)
    m = np.asarray(dump.mask) != 0
    ent = np.where(m, np.asarray(dump.entropy, np.float64), 0.0)
    b = m.shape[0]
    if b % g:
        raise ValueError(f"{b} rows are not a multiple of group_size={g}")
    tok_sum, tok_n = ent.sum(1).reshape(-1, g), m.sum(1).reshape(-1, g)
    per_resp = np.where(tok_n > 0, tok_sum / np.maximum(tok_n, 1), np.nan)
    with np.errstate(invalid="ignore"):
        spread = np.array([np.nanstd(r) if np.isfinite(r).sum() > 1 else np.nan for r in per_resp])
    return {
        "entropy": tok_sum.sum(1) / np.maximum(tok_n.sum(1), 1),
        "spread": spread,
        "accuracy": np.asarray(dump.positive, np.float64).reshape(-1, g).mean(1),
    }


def prompt_entropy_summary(dumps: Sequence) -> dict:
    """Pooled over ``dumps``: per accuracy bucket the number of prompts, mean prompt entropy and mean
    spread; ``spearman_entropy_accuracy`` (rho, p) across the prompts."""
    from jaxrlvr.analysis.stats import spearman

    parts = [prompt_entropy(d) for d in dumps]
    if not parts:
        return {}
    e = np.concatenate([p["entropy"] for p in parts])
    s = np.concatenate([p["spread"] for p in parts])
    a = np.concatenate([p["accuracy"] for p in parts])
    which = np.where(a == 0, 0, np.where(a <= 0.5, 1, np.where(a < 1, 2, 3)))
    out = {}
    for i, name in enumerate(BUCKETS):
        sel = which == i
        out[name] = {
            "prompts": int(sel.sum()),
            "entropy": float(e[sel].mean()) if sel.any() else float("nan"),
            "spread": float(np.nanmean(s[sel])) if sel.any() and np.isfinite(s[sel]).any() else float("nan"),
        }
    rho, p = spearman(e, a)
    return {"buckets": out, "spearman_entropy_accuracy": {"rho": rho, "p": p}, "num_prompts": int(e.size)}


# ------------------------------------------------------------------------- entropy on the prompts themselves
def prompt_token_entropy(model_cfg, params, prompts: Sequence[Sequence[int]], *, batch: int = 8, pad_id: int = 0):
    """[P] float64: per prompt, the mean entropy (nats, temperature 1) of the model's next-token distribution
    at positions ``0 .. L-2`` (each predicts a prompt token); NaN for a prompt of one token. Prompts are
    left-padded in batches of ``batch`` (padded to the batch's longest, so at most ``batch`` shapes compile
    per length bucket)."""
    run = _prompt_entropy_sums()
    out = np.full(len(prompts), np.nan)
    for start in range(0, len(prompts), batch):
        chunk = [list(p) for p in prompts[start : start + batch]]
        width = max(8, -(-max(len(p) for p in chunk) // 8) * 8)  # multiples of 8: fewer compiled shapes
        ids = np.full((batch, width), pad_id, np.int32)
        mask = np.zeros((batch, width), np.int32)
        for i, p in enumerate(chunk):
            ids[i, width - len(p) :], mask[i, width - len(p) :] = p, 1
        tot, n = (np.asarray(x, np.float64) for x in run(model_cfg, params, ids, mask))
        for i in range(len(chunk)):
            if n[i] > 0:
                out[start + i] = tot[i] / n[i]
    return out


_JITTED = {}


def _prompt_entropy_sums():
    """The jitted ``(model_cfg, params, ids_BT, mask_BT) -> (entropy sum [B], positions [B])`` (model_cfg
    static, params an argument: one compilation per model and shape, no weights baked in)."""
    if "sums" not in _JITTED:
        import jax
        import jax.numpy as jnp

        from jaxrlvr.models import hidden_states
        from jaxrlvr.models.model import token_logprobs_and_entropy

        def sums(model_cfg, params, ids, mask):
            h = hidden_states(model_cfg, params, ids, mask)
            _, ent = token_logprobs_and_entropy(model_cfg, params, h[:, :-1], ids[:, 1:])
            m = (mask[:, :-1] * mask[:, 1:]).astype(jnp.float32)  # the position and its next token are real
            return jnp.sum(ent * m, axis=1), jnp.sum(m, axis=1)

        _JITTED["sums"] = jax.jit(sums, static_argnums=0)
    return _JITTED["sums"]


def per_prompt_accuracy(samples_path) -> dict[str, float]:
    """``{problem_id: mean correct}`` from an evaluation's ``<benchmark>.samples.jsonl``."""
    import json
    import pathlib

    hits: dict[str, list[float]] = {}
    for line in pathlib.Path(samples_path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            hits.setdefault(str(r["problem_id"]), []).append(float(bool(r["correct"])))
    return {k: float(np.mean(v)) for k, v in hits.items()}


def prompt_entropy_study(
    checkpoints: dict,
    tokenizer,
    *,
    in_domain: str = "aime24",
    out_of_domain: str = "ifeval",
    max_prompts: int = 30,
    eval_root=None,
    reference=None,
) -> dict:
    """Revisiting C.2 / C.3 over a run's checkpoints.

    ``checkpoints``: ``{step: folder}`` (``jaxrlvr.runs.load_params`` reads each); ``reference``: the
    ``(ModelConfig, params)`` before training (None: the earliest checkpoint, said in ``reference_step``).
    For ``in_domain`` and ``out_of_domain`` (first ``max_prompts`` problems of each, prompts as the
    evaluation builds them): ``entropy[bench][step]`` (mean over prompts) and ``ratio[bench][step]`` (that
    over the reference's). With ``eval_root`` (a run's ``eval/`` folder), for every ``step_N/<bench>``
    evaluation at a step with a checkpoint: Spearman (rho, p) between each problem's prompt entropy and its
    accuracy over the evaluation's samples, in ``correlation[bench][step]`` (with ``n`` prompts)."""
    import pathlib

    from jaxrlvr.analysis.stats import spearman
    from jaxrlvr.eval import EvalConfig, prepare_benchmarks
    from jaxrlvr.runs import load_params

    def prepared(bench, limit):
        (pb,) = prepare_benchmarks(EvalConfig(benchmarks=(bench,), max_problems=limit), tokenizer)
        return [str(r["id"]) for r in pb.rows], pb.prompts

    sets = {b: prepared(b, max_prompts) for b in (in_domain, out_of_domain)}
    evals = {}
    if eval_root is not None and pathlib.Path(eval_root).is_dir():
        for d in sorted(pathlib.Path(eval_root).glob("step_*")):
            if d.name[5:].isdigit() and int(d.name[5:]) in checkpoints:
                for f in d.glob("*.samples.jsonl"):
                    evals.setdefault(int(d.name[5:]), {})[f.name[: -len(".samples.jsonl")]] = f
    steps = sorted(checkpoints)
    ref_step = None
    if reference is None:
        ref_step = steps[0]
        reference = load_params(checkpoints[ref_step])
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    ref = {b: float(np.nanmean(prompt_token_entropy(*reference, p, pad_id=pad))) for b, (_, p) in sets.items()}
    entropy = {b: {} for b in sets}
    correlation: dict = {}
    for step in steps:
        model_cfg, params = load_params(checkpoints[step])
        for b, (_, p) in sets.items():
            entropy[b][step] = float(np.nanmean(prompt_token_entropy(model_cfg, params, p, pad_id=pad)))
        for bench, path in evals.get(step, {}).items():
            acc = per_prompt_accuracy(path)
            ids, p = prepared(bench, None)
            keep = [i for i, pid in enumerate(ids) if pid in acc]
            if len(keep) < 3:
                continue
            h = prompt_token_entropy(model_cfg, params, [p[i] for i in keep], pad_id=pad)
            rho, pv = spearman(h, np.array([acc[ids[i]] for i in keep]))
            correlation.setdefault(bench, {})[step] = {"rho": rho, "p": pv, "n": len(keep)}
    ratio = {b: {s: (v / ref[b] if ref[b] else float("nan")) for s, v in e.items()} for b, e in entropy.items()}
    return {
        "in_domain": in_domain,
        "out_of_domain": out_of_domain,
        "prompts": {b: len(p) for b, (_, p) in sets.items()},
        "reference_step": ref_step,
        "reference_entropy": ref,
        "entropy": entropy,
        "ratio": ratio,
        "correlation": correlation,
    }


def run_prompt_entropy(run, max_prompts: int = 30) -> dict:
    """:func:`prompt_entropy_study` for a run (``jaxrlvr.runs.Run``): its kept checkpoints (and
    ``best_validated/``), its tokenizer, the weights it started from as the reference when they can be
    loaded (``model.hf_path`` / ``model.init_ckpt``; else the earliest checkpoint), its ``eval/`` folder.
    ``{"note": why}`` when it cannot run (no checkpoint, no tokenizer, a benchmark that cannot load)."""
    import pathlib

    from jaxrlvr.eval import load_eval_tokenizer, load_model
    from jaxrlvr.eval.select import candidate_checkpoints
    from jaxrlvr.runs import run_config

    wd = pathlib.Path(run.workdir)
    try:
        checkpoints = candidate_checkpoints(wd)
        tokenizer = load_eval_tokenizer("", wd)
        model = (run_config(wd) or {}).get("model") or {}
        start = model.get("init_ckpt") or model.get("hf_path")
        reference = load_model(start) if start and pathlib.Path(start).exists() else None
        return prompt_entropy_study(
            checkpoints, tokenizer, max_prompts=max_prompts, eval_root=wd / "eval", reference=reference
        )
    except Exception as e:  # noqa: BLE001 (a run this cannot measure only loses this section)
        return {"note": f"prompt entropy not computed: {type(e).__name__}: {e}"}


def prompt_entropy_html(pe: dict | None) -> str:
    """The report's section for :func:`run_prompt_entropy` ('' when absent)."""
    import html

    if not pe:
        return ""
    head = "<h2>Prompt entropy (Revisiting App. C.2 / C.3)</h2>"
    if "note" in pe:
        return f"{head}<p>{html.escape(pe['note'])}</p>"

    def f(v):
        return "-" if v is None or not np.isfinite(v) else f"{v:.4g}"

    ref = "the weights the run started from" if pe["reference_step"] is None else f"step {pe['reference_step']}"
    benches = (pe["in_domain"], pe["out_of_domain"])

    def cells(s):
        return "".join(f"<td>{f(pe['entropy'][b][s])}</td><td>{f(pe['ratio'][b][s])}</td>" for b in benches)

    rows = "".join(f"<tr><td>{s}</td>{cells(s)}</tr>" for s in sorted(pe["entropy"][benches[0]]))
    cols = "".join(f"<th>{b} entropy</th><th>{b} ratio</th>" for b in benches)
    parts = [
        head,
        f"<p>The model's mean next-token entropy on the prompt tokens of {pe['prompts']} prompts (in-domain "
        f"{html.escape(benches[0])}, out-of-domain {html.escape(benches[1])}), and its ratio to {ref}'s.</p>",
        f"<table><tr><th>checkpoint</th>{cols}</tr>{rows}</table>",
    ]
    if pe["correlation"]:
        rows = "".join(
            f"<tr><td>{html.escape(b)}</td><td>{s}</td><td>{c['n']}</td><td>{f(c['rho'])}</td><td>{f(c['p'])}</td></tr>"
            for b, by in pe["correlation"].items()
            for s, c in sorted(by.items())
        )
        parts.append(
            "<p>Spearman's rank correlation between each problem's prompt entropy and its accuracy over the "
            "evaluation's samples (C.3 uses 64).</p><table><tr><th>benchmark</th><th>step</th><th>prompts</th>"
            f"<th>rho</th><th>p</th></tr>{rows}</table>"
        )
    return "\n".join(parts)

"""Vocabulary-level analyses of the first paper (Deng et al. 2025, arXiv 2508.02260) from rollout dumps.

- **Vocabulary-level entropy drop** (Fig. 1b / Fig. 2a): every token id's mean entropy (the entropy of the
  next-token distribution at the positions where that id was sampled) in an early and a late window of
  dumps; the drop is early minus late. Ids are split by where they occur in the early window: only in
  negative (incorrect) samples, only in positive ones, or in both -- Fig. 2a's "tokens exclusive to
  negative samples" -- and each group's share of the ids, mean drop and share of the total drop
  (occurrence-weighted in the late window) are reported.
- **Token categories of the top-shift tokens**: the tokens whose probability moved most in the update (the
  top 20% by ``|p_new - p_old|``) are decoded one by one and classified with the unit rules of
  ``jaxrlvr.analysis.text.classify_units`` (the first counted unit of the token's text); per category: its
  share among them and among all tokens, the rate at which its tokens reach the top 20%, and its mean
  ``|shift|`` (Deng's per-category numbers are not shares: ``top_shift_categories``). Tokens with no
  counted unit (spaces, punctuation) are "other". Classification of single tokens cannot see multi-word
  phrases (``let me``): those count by their words.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence

import numpy as np

from jaxrlvr.analysis.prompts import prompt_entropy_summary
from jaxrlvr.analysis.shift import probability_shift, top_fraction_mask
from jaxrlvr.analysis.text import CATEGORIES, classify_units

GROUPS = ("neg_only", "pos_only", "both")


def token_entropy_stats(dumps: Sequence) -> dict[str, np.ndarray]:
    """Pooled over ``dumps``: per token id, the entropy sum and count, and its occurrences in positive /
    negative samples. Returns ``ids``, ``mean_entropy``, ``count``, ``count_pos``, ``count_neg`` (1-D,
    over the ids that occur)."""
    ids_l, ent_l, pos_l = [], [], []
    for d in dumps:
        m = np.asarray(d.mask) != 0
        rows = np.broadcast_to(np.asarray(d.positive, bool)[:, None], m.shape)
        ids_l.append(np.asarray(d.tokens)[m])
        ent_l.append(np.asarray(d.entropy, np.float64)[m])
        pos_l.append(rows[m])
    if not ids_l or not sum(x.size for x in ids_l):
        z = np.zeros(0)
        return {"ids": z.astype(np.int64), "mean_entropy": z, "count": z, "count_pos": z, "count_neg": z}
    ids, ent, pos = np.concatenate(ids_l), np.concatenate(ent_l), np.concatenate(pos_l)
    uniq, inv = np.unique(ids, return_inverse=True)
    count = np.bincount(inv, minlength=uniq.size).astype(np.float64)
    return {
        "ids": uniq.astype(np.int64),
        "mean_entropy": np.bincount(inv, weights=ent, minlength=uniq.size) / count,
        "count": count,
        "count_pos": np.bincount(inv, weights=pos.astype(np.float64), minlength=uniq.size),
        "count_neg": np.bincount(inv, weights=(~pos).astype(np.float64), minlength=uniq.size),
    }


def vocabulary_entropy_drop(early: Sequence, late: Sequence, *, top: int = 15) -> dict:
    """Per-id entropy drop between the ``early`` and ``late`` dumps (ids occurring in both windows).

    Returns ``groups``: for ``neg_only`` / ``pos_only`` / ``both`` (by occurrence in the early window) the
    number of ids, their share, the mean drop and the share of the total drop (drop x late count);
    ``top``: the ``top`` ids with the largest drop (id, early, late, drop, group); ``num_ids``."""
    e, l_ = token_entropy_stats(early), token_entropy_stats(late)
    common, ie, il = np.intersect1d(e["ids"], l_["ids"], return_indices=True)
    drop = e["mean_entropy"][ie] - l_["mean_entropy"][il]
    weight = l_["count"][il]
    group = np.where(e["count_pos"][ie] == 0, 0, np.where(e["count_neg"][ie] == 0, 1, 2))
    total = float(np.sum(drop * weight))
    groups = {}
    for g, name in enumerate(GROUPS):
        sel = group == g
        groups[name] = {
            "ids": int(sel.sum()),
            "id_share": float(sel.mean()) if sel.size else float("nan"),
            "mean_drop": float(drop[sel].mean()) if sel.any() else float("nan"),
            "drop_share": float(np.sum(drop[sel] * weight[sel]) / total) if total else float("nan"),
        }
    order = np.argsort(-drop, kind="stable")[:top]
    rows = [
        {
            "id": int(common[i]),
            "early": float(e["mean_entropy"][ie[i]]),
            "late": float(l_["mean_entropy"][il[i]]),
            "drop": float(drop[i]),
            "group": GROUPS[group[i]],
        }
        for i in order
    ]
    return {"groups": groups, "top": rows, "num_ids": int(common.size)}


def token_category(text: str) -> str:
    """The category of one decoded token: that of its first counted unit, else ``"other"``."""
    for _, cat in classify_units(text):
        if cat is not None:
            return cat
    return "other"


def top_shift_categories(dumps: Sequence, decode: Callable[[int], str], *, fraction: float = 0.2) -> dict:
    """Per token category, pooled over ``dumps``, the top-``fraction`` ``|shift|`` tokens against all tokens.
    ``decode(token_id) -> str`` (ids are decoded once each). Over ``CATEGORIES + ("other",)``:

    - ``"top"`` / ``"all"``: the category's share of the top-``fraction`` tokens / of all tokens (sum to 1);
    - ``"rate"``: the share of the category's own tokens that are in the top ``fraction`` (``fraction`` on
      average over all tokens; above it, the category moves more than the rest);
    - ``"mean_abs_shift_top"`` / ``"mean_abs_shift"``: the mean ``|p_new - p_old|`` of the category's tokens
      among the top ``fraction`` / among all its tokens.

    Deng et al. (Plateau Stage) report one number per category, "formal reasoning ... have the highest
    proportion (0.039), followed by metacognitive reasoning tokens (0.034), general semantic tokens (0.033),
    and logical structuring tokens (0.031)": these do not sum to 1, so they are not the shares; the text
    does not define them. Magnitudes of 0.03 - 0.04 fit a mean probability shift (most shifts are below
    0.06 in Deng's Fig. 3) better than a rate (about 0.2 at a 20% cut): ``mean_abs_shift`` is the column to
    set against them (our reading)."""
    cats = (*CATEGORIES, "other")
    cache: dict[int, str] = {}
    counts = {"top": dict.fromkeys(cats, 0), "all": dict.fromkeys(cats, 0)}
    sums = {"top": dict.fromkeys(cats, 0.0), "all": dict.fromkeys(cats, 0.0)}
    for d in dumps:
        m = np.asarray(d.mask) != 0
        shift = np.abs(probability_shift(d.old_logp, d.new_logp, m))
        top = top_fraction_mask(shift, m, fraction=fraction)
        tokens = np.asarray(d.tokens)
        for sel, key in ((m, "all"), (top & m, "top")):
            for t, x in zip(tokens[sel].tolist(), shift[sel].tolist(), strict=True):
                if t not in cache:
                    cache[t] = token_category(decode(t))
                counts[key][cache[t]] += 1
                sums[key][cache[t]] += x
    nan = float("nan")
    out = {}
    for key, c in counts.items():
        n = sum(c.values())
        out[key] = {k: (v / n if n else nan) for k, v in c.items()}
    out["rate"] = {k: (counts["top"][k] / counts["all"][k] if counts["all"][k] else nan) for k in cats}
    out["mean_abs_shift_top"] = {k: (sums["top"][k] / counts["top"][k] if counts["top"][k] else nan) for k in cats}
    out["mean_abs_shift"] = {k: (sums["all"][k] / counts["all"][k] if counts["all"][k] else nan) for k in cats}
    return out


def run_decoder(workdir) -> Callable[[int], str] | None:
    """``decode(id)`` with the run's tokenizer (``config.json``: ``tokenizer``, else ``model.hf_path``);
    None when it cannot be loaded here (the section is then left out)."""
    import pathlib

    f = pathlib.Path(workdir) / "config.json"
    if not f.is_file():
        return None
    c = json.loads(f.read_text())
    spec = c.get("tokenizer") or c.get("model", {}).get("hf_path") or ""
    try:
        from jaxrlvr.data.tokenizer import CharTokenizer, load_tokenizer

        tok = CharTokenizer() if spec == "char" else load_tokenizer(spec) if spec else None
    except Exception:  # noqa: BLE001 (a missing / unreadable tokenizer only drops this section)
        return None
    return None if tok is None else (lambda t: tok.decode([int(t)]))


def vocab_sections(run, *, window: int = 2, fraction: float = 0.2) -> dict:
    """Both analyses for a run: the first and last ``window`` dumps are the early / late windows (at
    least 2 dumps needed for the drop); the top-shift categories pool the late window."""
    steps = sorted(run.dumps)
    if not steps:
        return {}
    w = max(1, min(window, len(steps) // 2))
    early = [run.dump(s) for s in steps[:w]]
    late = [run.dump(s) for s in steps[-w:]]
    out = {"early_steps": steps[:w], "late_steps": steps[-w:]}
    decode = run_decoder(run.workdir)
    if len(steps) >= 2:
        out["entropy_drop"] = vocabulary_entropy_drop(early, late)
        if decode is not None:
            for r in out["entropy_drop"]["top"]:
                r["text"] = decode(r["id"])
    if decode is not None:
        out["shift_categories"] = top_shift_categories(late, decode, fraction=fraction)
    out["prompt_entropy"] = prompt_entropy_summary(late)
    return out


def _f(v) -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.4g}"


def vocab_html(v: dict) -> str:
    """The report's section for ``vocab_sections``' result ('' when empty)."""
    if not v:
        return ""
    parts = ["<h2>Vocabulary-level entropy drop, top-shift token categories, prompt entropy</h2>"]
    d = v.get("entropy_drop")
    if d:
        parts.append(
            f"<p>Per token id: mean entropy where it was sampled, dumps {v['early_steps']} (early) vs "
            f"{v['late_steps']} (late), {d['num_ids']} ids in both (Deng et al. Fig. 1b / 2a). Groups by "
            "occurrence in the early window; drop share weights each id by its late count.</p>"
        )
        head = "<tr><th>ids</th><th>count</th><th>share of ids</th><th>mean drop</th><th>share of drop</th></tr>"
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{g['ids']}</td><td>{_f(g['id_share'])}</td>"
            f"<td>{_f(g['mean_drop'])}</td><td>{_f(g['drop_share'])}</td></tr>"
            for k, g in d["groups"].items()
        )
        parts.append(f"<table>{head}{rows}</table>")
        head = "<tr><th>id</th><th>text</th><th>early</th><th>late</th><th>drop</th><th>group</th></tr>"
        rows = "".join(
            f"<tr><td>{r['id']}</td><td>{html.escape(repr(r.get('text', '')))}</td><td>{_f(r['early'])}</td>"
            f"<td>{_f(r['late'])}</td><td>{_f(r['drop'])}</td><td>{r['group']}</td></tr>"
            for r in d["top"]
        )
        parts.append(f"<h3>Largest drops</h3><table>{head}{rows}</table>")
    c = v.get("shift_categories")
    if c:
        parts.append(
            "<h3>Token categories of the top-20% probability-shift tokens</h3><p>Dumps "
            f"{v['late_steps']}; each token decoded alone and classified by the category rules. Deng's per-category "
            "numbers (0.039 / 0.034 / 0.033 / 0.031) are not shares; compare them with mean |shift| (our reading; "
            "jaxrlvr.analysis.vocab.top_shift_categories).</p>"
        )
        head = (
            "<tr><th>category</th><th>share of top-20% |shift| tokens</th><th>share of all tokens</th>"
            "<th>rate in top 20%</th><th>mean |shift|, top 20%</th><th>mean |shift|, all</th></tr>"
        )
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{_f(c['top'][k])}</td><td>{_f(c['all'][k])}</td>"
            f"<td>{_f(c.get('rate', {}).get(k))}</td><td>{_f(c.get('mean_abs_shift_top', {}).get(k))}</td>"
            f"<td>{_f(c.get('mean_abs_shift', {}).get(k))}</td></tr>"
            for k in c["top"]
        )
        parts.append(f"<table>{head}{rows}</table>")
    pe = v.get("prompt_entropy")
    if pe:
        rho = pe["spearman_entropy_accuracy"]
        parts.append(
            f"<h3>Prompt-level entropy</h3><p>Dumps {v['late_steps']}, {pe['num_prompts']} prompts: mean "
            "response entropy per prompt and its spread over the G responses, by group accuracy "
            f"(Spearman rho(entropy, accuracy) = {_f(rho['rho'])}, p = {_f(rho['p'])}). Our reading of "
            "Revisiting Entropy App. C.2 / C.3 (jaxrlvr.analysis.prompts).</p>"
        )
        head = "<tr><th>prompts</th><th>count</th><th>mean entropy</th><th>spread over G</th></tr>"
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{b['prompts']}</td><td>{_f(b['entropy'])}</td><td>{_f(b['spread'])}</td></tr>"
            for k, b in pe["buckets"].items()
        )
        parts.append(f"<table>{head}{rows}</table>")
    return "\n".join(parts)

"""The settings each rollout dump was written with, for the report: a run resumed with another
``train.dump_rollouts_every`` (the one setting, with logging and evaluation, that a resume may change) has
dumps written under different settings, while ``config.json`` holds only the latest. Each dump's own are read
with :meth:`jaxrlvr.runs.Run.dump_settings` (the dump's ``settings.json``; ``config_history.jsonl`` for
older dumps)."""

from __future__ import annotations

SHOWN = {
    "train.dump_rollouts_every": "every",
    "rollout.temperature": "temperature",
    "rollout.top_p": "top_p",
    "rollout.max_new_tokens": "max_new_tokens",
    "rollout.max_staleness": "max_staleness",
}


def dump_settings_table(run) -> list[dict]:
    """One row per dump: ``step``, the :data:`SHOWN` settings in force when it was written and ``from``
    (``dump``, ``config_history.jsonl`` or ``config.json``)."""
    out = []
    for step in run.dumps:
        settings, source = run.dump_settings(step)
        out.append({"step": int(step), **{short: settings.get(k) for k, short in SHOWN.items()}, "from": source})
    return out


def dump_schedule(table: list[dict]) -> str | None:
    """``"steps 1-2: every 1; step 4: every 2 (resumed)"``-style text: consecutive dumps with equal settings
    grouped, the sampling settings named where they differ between groups; None without dumps."""
    if not table:
        return None
    keys = [short for short in SHOWN.values() if short != "every"]
    groups: list[list[dict]] = []
    for row in table:
        if groups and all(row[k] == groups[-1][0][k] for k in ["every", *keys]):
            groups[-1].append(row)
        else:
            groups.append([row])
    varies = [k for k in keys if len({str(g[0][k]) for g in groups}) > 1]
    parts = []
    for g in groups:
        first, last = g[0]["step"], g[-1]["step"]
        where = f"step {first}" if first == last else f"steps {first}-{last}"
        extra = "".join(f", {k} {g[0][k]}" for k in varies)
        parts.append(f"{where}: every {g[0]['every']}{extra}")
    return "; ".join(parts)


def mixed_settings(table: list[dict], steps: list[int]) -> str | None:
    """A note when the dumps ``steps`` (e.g. the pooled ones) were sampled with different settings."""
    rows = [r for r in table if r["step"] in set(steps)]
    differ = [k for k in SHOWN.values() if k != "every" and len({str(r[k]) for r in rows}) > 1]
    if not differ:
        return None
    return f"the dumps {', '.join(str(r['step']) for r in rows)} were sampled with different {', '.join(differ)}"


def measured_policy(table: list[dict]) -> str:
    """Which policy the dumps' ``old_logp`` / ``entropy`` measure: the one that sampled (synchronous), or,
    with asynchronous rollouts (``rollout.max_staleness = k > 0``), the params at each update's start."""
    ks = sorted({int(r.get("max_staleness") or 0) for r in table})
    if not ks or ks == [0]:
        return "the policy that sampled the rows (synchronous rollouts)"
    return (
        "the params at each update's start (proximal policy), not the one that sampled: rollouts up to "
        f"{max(ks)} step(s) old (rollout.max_staleness={'/'.join(map(str, ks))})"
    )

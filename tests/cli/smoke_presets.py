"""Runs every given smoke preset as ``scripts/train.py --config SPEC --config.train.num_steps=1`` would, in
one process so that compilations are shared (tests/cli/test_presets.py). Usage:

    python tests/cli/smoke_presets.py OUT_DIR configs/dapo_baseline.py:smoke configs/demo.py:smoke ...

Writes ``OUT_DIR/results.json``: {spec: "ok" | "error: ..."}. The SFT warm start and the held-out accuracy
run once per code: a preset skips its SFT when a preset before it had the same config fields that SFT reads
(``SFT_READS``), and its held-out accuracy when one had the same fields that it reads (``HELDOUT_READS``);
every preset of a file has the same ones (``apply_smoke``), and so do dapo_baseline, ppl_shaping and
position_shaping (the same tiny model, data and rollout settings), so those presets differ only in the RL step.
"""

import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from jaxrlvr import cli_support as cli  # noqa: E402

# the config sections each stage reads (the held-out accuracy samples at the rollout settings, scores with
# the reward's verifier)
SFT_READS = ("seed", "tokenizer", "model", "mesh", "data", "sft")
HELDOUT_READS = ("seed", "tokenizer", "model", "mesh", "data", "rollout", "reward")


def _key(c, sections) -> str:
    d = c.to_dict()
    return json.dumps({k: d[k] for k in sections}, sort_keys=True, default=str)


def main(out: str, specs: list[str]) -> None:
    cli.quiet_logs()
    from jaxrlvr.train.loop import train

    out_dir = pathlib.Path(out)
    results, seen = {}, set()
    for i, spec in enumerate(specs):
        t0 = time.time()
        try:
            c = cli.load_config_file(spec)
            c.lock()
            c.train.num_steps = 1
            c.log.tensorboard = False  # the CLI's other outputs are checked in test_train_cli.py
            c.log.plots = False
            sft, heldout = ("sft", _key(c, SFT_READS)), ("heldout", _key(c, HELDOUT_READS))
            if sft in seen:
                c.sft.steps = 0
            if heldout in seen:
                c.data.heldout = 0
            seen |= {sft, heldout}
            summary = train(c, str(out_dir / f"run{i}"), log=lambda *a, **k: None)
            results[spec] = "ok" if summary["steps"] == 1 else f"error: summary {summary}"
        except Exception as e:  # reported per preset
            results[spec] = f"error: {type(e).__name__}: {e}"
        print(f"{spec}: {results[spec]} ({time.time() - t0:.1f}s)", flush=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

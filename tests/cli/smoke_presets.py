"""Runs every given smoke preset as ``scripts/train.py --config SPEC --config.train.num_steps=1`` would, in
one process so that compilations are shared (tests/cli/test_presets.py). Usage:

    python tests/cli/smoke_presets.py OUT_DIR configs/dapo_baseline.py:smoke configs/demo.py:smoke ...

Writes ``OUT_DIR/results.json``: {spec: "ok" | "error: ..."}. The first preset of each config file runs as
shipped (SFT warm start and held-out accuracy included); the others skip those two stages, which are the
same code at the same sizes for every preset of a file (``apply_smoke``), and differ only in the RL step.
"""

import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from jaxrlvr import cli_support as cli  # noqa: E402


def main(out: str, specs: list[str]) -> None:
    cli.quiet_logs()
    from jaxrlvr.train.loop import train

    out_dir = pathlib.Path(out)
    results, files_seen = {}, set()
    for i, spec in enumerate(specs):
        t0 = time.time()
        try:
            c = cli.load_config_file(spec)
            c.lock()
            c.train.num_steps = 1
            c.log.tensorboard = False  # the CLI's other outputs are checked in test_train_cli.py
            c.log.plots = False
            file = spec.partition(":")[0]
            if file in files_seen:
                c.sft.steps, c.data.heldout = 0, 0
            files_seen.add(file)
            summary = train(c, str(out_dir / f"run{i}"), log=lambda *a, **k: None)
            results[spec] = "ok" if summary["steps"] == 1 else f"error: summary {summary}"
        except Exception as e:  # reported per preset
            results[spec] = f"error: {type(e).__name__}: {e}"
        print(f"{spec}: {results[spec]} ({time.time() - t0:.1f}s)", flush=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

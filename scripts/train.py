"""Train with RLVR from a config file.

    python scripts/train.py --config configs/NAME.py[:preset,...] --config.key=value --workdir DIR

Re-running with the same --workdir resumes from its latest checkpoint. The installed command
``jaxrlvr-train`` runs the same code (``jaxrlvr.cli.train``).
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # configs/ import their shared presets

from jaxrlvr.cli import train  # noqa: E402

if __name__ == "__main__":
    train()

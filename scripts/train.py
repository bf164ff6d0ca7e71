"""Train with RLVR from a config file.

    python scripts/train.py --config configs/NAME.py[:preset,...] --config.key=value --workdir DIR

Re-running with the same --workdir resumes from its latest checkpoint (raise --config.train.num_steps to
extend a finished run). A user error (config, preset, key, file, data) is one line and exit status 2.
"""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # configs/ import their shared presets

from absl import app, flags
from ml_collections import config_flags

from jaxrlvr import cli_support as cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file (configs/NAME.py[:presets])", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics, plots, summary)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}: options are --config FILE[:presets], --config.key=value, --workdir")
    cli.quiet_logs()  # orbax logs every save at INFO
    from jaxrlvr.train.loop import train

    with cli.user_errors():  # config / file / data validation: a message, not a traceback
        summary = train(_CONFIG.value, _WORKDIR.value)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser)

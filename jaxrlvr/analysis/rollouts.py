"""Re-export of :mod:`jaxrlvr.runs` (the run-directory formats, shared by the trainer and analysis)."""

from jaxrlvr.runs import DUMP_KEYS, RolloutDump, Run, dump_path, list_dumps, load_run

__all__ = ["DUMP_KEYS", "RolloutDump", "Run", "dump_path", "list_dumps", "load_run"]

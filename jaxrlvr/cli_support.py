"""User-facing behaviour shared by the command-line entry points (``jaxrlvr.cli``, scripts/analyze.py): flag
parsing whose user errors are one line with the fix (exit status 2, no traceback), and quiet library logging.

A user error is a bad config file or preset, an unknown ``--config.key`` (with the closest known key), a
missing required flag, or a ``ValueError`` / ``FileNotFoundError`` raised while validating the config, the
files and the data (the scripts catch those around their main call with :func:`user_errors`).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import logging
import pathlib
import sys

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError)


def fail(message: str) -> None:
    """Prints ``error: message`` (one line) to stderr and exits with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def quiet_logs() -> None:
    """Silences absl / orbax INFO lines and JAX's backend probing ("Unable to initialize backend 'tpu'")."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in ("jax._src.xla_bridge", "orbax", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR if name == "jax._src.xla_bridge" else logging.WARNING)


@contextlib.contextmanager
def user_errors():
    """Turns the user errors raised inside into one ``error:`` line and exit status 2."""
    try:
        yield
    except USER_ERRORS as e:
        fail(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)


def flag_value(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv`` (None when absent)."""
    for i, a in enumerate(argv):
        if a == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def load_config_file(spec: str):
    """``path.py[:arg]`` -> the file's ``get_config(arg)``; a missing file or a bad preset is a ``ValueError``
    with a one-line message."""
    path, _, arg = spec.partition(":")
    file = pathlib.Path(path)
    if not file.is_file():
        raise ValueError(f"config file {path!r} not found (e.g. --config configs/demo.py:smoke)")
    module_spec = importlib.util.spec_from_file_location(f"_jaxrlvr_cfg_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    try:
        return module.get_config(arg or None) if arg else module.get_config()
    except (ValueError, KeyError) as e:
        raise ValueError(f"{spec}: {e}") from None


def unknown_key_message(config, dotted: str) -> str | None:
    """``"unknown key a.b; did you mean a.c?"`` when ``dotted`` is not a key of ``config``, else None."""
    node, done = config, []
    for part in dotted.split("."):
        keys = list(node.keys()) if hasattr(node, "keys") else []
        if part not in keys:
            guess = difflib.get_close_matches(part, keys, n=1)
            prefix = ".".join(done)
            hint = f"; did you mean {'.'.join([*done, guess[0]])}?" if guess else ""
            where = f" (keys of {prefix}: {', '.join(sorted(keys))})" if not guess and prefix and keys else ""
            return f"unknown key {dotted}{hint}{where}"
        node, done = node[part], [*done, part]
    return None


def explain_flag_error(argv: list[str], error: Exception, config_flag: str = "config") -> str:
    """The one-line message for a failed flag parse: the config file or preset, an unknown override key
    (with the closest key), else the parser's own first line."""
    spec = flag_value(argv, config_flag)
    if spec:
        try:
            cfg = load_config_file(spec)
        except ValueError as e:
            return str(e)
        except Exception as e:  # the config file itself is broken: its own error
            return f"{spec}: {type(e).__name__}: {e}"
        for a in argv:
            if a.startswith(f"--{config_flag}."):
                msg = unknown_key_message(cfg, a[len(config_flag) + 3 :].split("=", 1)[0])
                if msg:
                    return msg
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def flags_parser(argv: list[str]):
    """``app.run(main, flags_parser=flags_parser)``: absl's parse, with user errors as one line + exit 2."""
    from absl import flags

    spec = flag_value(argv[1:], "config")
    if spec and not pathlib.Path(spec.partition(":")[0]).is_file():  # config_flags would defer this error
        fail(f"config file {spec.partition(':')[0]!r} not found (e.g. --config configs/demo.py:smoke)")
    try:
        return flags.FLAGS(argv)
    except SystemExit:
        raise
    except Exception as e:
        fail(explain_flag_error(argv[1:], e))

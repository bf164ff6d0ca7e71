"""The shell commands printed in README.md / docs/*.md, as argument lists (for tests/cli)."""

import pathlib
import re
import shlex

from jaxrlvr.cli_support import flag_value

ROOT = pathlib.Path(__file__).resolve().parents[2]


def commands(md_file: str) -> list[list[str]]:
    """Every ``python ...`` command of the file's ```bash blocks (continuation lines joined, comments off)."""
    text = (ROOT / md_file).read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv and argv[0] == "python":
                out.append(argv[1:])
    return out


option = flag_value  # the value of --name VALUE or --name=VALUE


def replace_option(argv: list[str], name: str, value: str) -> list[str]:
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == f"--{name}" and i + 1 < len(argv):
            out += [a, value]
            skip = True
        elif a.startswith(f"--{name}="):
            out.append(f"--{name}={value}")
        else:
            out.append(a)
    return out

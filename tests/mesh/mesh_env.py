"""``XLA_FLAGS`` for a subprocess with ``n`` host devices that keeps the suite's own flags (tests/conftest.py:
XLA's CPU optimisation level 0, which roughly halves the compile time of tiny programs)."""

import os


def host_device_flags(n: int) -> str:
    return f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}".strip()

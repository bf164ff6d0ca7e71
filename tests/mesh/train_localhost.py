"""``scripts/train.py`` for the 2-process test: gloo pinned to 127.0.0.1, then the real script.

    python tests/mesh/train_localhost.py --config ... --workdir ...

gloo binds the address the machine's hostname resolves to, which a sandbox may not route; the pin uses a
private JAX hook (best effort: without it the run uses JAX's default).
"""

import pathlib
import runpy
import sys


def _pin_gloo_to_localhost():
    try:
        from jax._src import xla_bridge

        orig = xla_bridge._jax.make_gloo_tcp_collectives
        xla_bridge._jax.make_gloo_tcp_collectives = lambda distributed_client, **_: orig(
            distributed_client=distributed_client, hostname="127.0.0.1"
        )
    except (ImportError, AttributeError):
        pass


if __name__ == "__main__":
    _pin_gloo_to_localhost()
    script = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "train.py"
    sys.argv = [str(script)] + sys.argv[1:]
    runpy.run_path(str(script), run_name="__main__")

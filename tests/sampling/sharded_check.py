"""Continuous batching jitted with shardings (``continuous.sharded_fns``) on 4 CPU devices, as a mesh
placement would: a (data=2, tensor=2) mesh, slots and rows over ``data``, K/V heads over ``tensor``.
Run in a subprocess (the device count is fixed when JAX starts) by test_continuous.py:

    python tests/sampling/sharded_check.py OUT.json

Writes the largest differences from the single-device run (numbers, not verdicts).
"""

import os
import sys

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import json  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

from jaxrlvr.models import ModelConfig, init_params  # noqa: E402
from jaxrlvr.sampling import continuous, prepare_params  # noqa: E402
from jaxrlvr.sampling.sampler import setup_call  # noqa: E402


def main(path):
    cfg = ModelConfig.preset("nano", vocab_size=128, num_layers=2)
    params = jax.tree.map(lambda x: x * 4, init_params(cfg, jax.random.key(0)))
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, 128, int(n)).tolist() for n in (5, 9, 2, 7)]
    call = dict(max_new_tokens=12, temperature=0.8, top_p=1.0, top_k=0, greedy=False, num_samples=2)
    call.update(eos_ids=(3, 4, 5, 6, 7, 8), pad_id=0, seed=3, attn_block=None)
    sampler, ids, lengths, key, eos = setup_call(cfg, prompts, **call)
    ip = prepare_params(cfg, params)
    ref, _ = continuous.run(sampler, ip, ids, lengths, key, eos, num_slots=4, min_slots=2)
    ref = jax.tree.map(np.asarray, ref)

    mesh = Mesh(np.asarray(jax.devices()).reshape(2, 2), ("data", "tensor"))
    rep = NamedSharding(mesh, P())

    def shardings(tree, kind):
        def one(x):
            if kind == "replicated" or x.ndim == 0:
                return rep
            rows = "data" if x.shape[0] % 2 == 0 else None
            heads = "tensor" if kind in ("cache", "store") and x.ndim == 4 and x.shape[1] % 2 == 0 else None
            return NamedSharding(mesh, P(rows, heads) if heads else P(rows))

        return jax.tree.map(one, tree)

    fns = continuous.sharded_fns(sampler, shardings, jax.device_put)
    ip_m = jax.device_put(ip, rep)
    out, stats = continuous.run(sampler, ip_m, ids, lengths, key, eos, num_slots=4, min_slots=2, fns=fns)
    out = jax.tree.map(np.asarray, out)
    res = {
        "tokens_equal": bool(np.array_equal(out.tokens, ref.tokens)),
        "lengths_equal": bool(np.array_equal(out.lengths, ref.lengths)),
        "truncated_equal": bool(np.array_equal(out.truncated, ref.truncated)),
        "logprob_max_diff": float(np.abs(out.logprobs - ref.logprobs).max()),
        "distinct_lengths": len(set(ref.lengths.tolist())),
        "compactions": stats.compactions,
        "rounds": stats.rounds,
        "lengths": ref.lengths.tolist(),
    }
    with open(path, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main(sys.argv[1])

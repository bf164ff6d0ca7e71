"""Training, sampling and porting a run on 8 CPU devices (meshes (8,1,1), (1,8,1), (1,4,2), (2,2,2), (1,2,4)).

The device count is fixed when JAX starts, and the rest of the suite runs on one device, so the checks
run in subprocesses with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
(``tests/mesh/mesh_checks.py``, its sections split over two processes run side by side); their numbers are
shared by the tests below (one run per pytest session, also under xdist: ``run_once`` in conftest.py).
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from mesh_env import host_device_flags

HERE = pathlib.Path(__file__).resolve().parent
MESHES = ["(8, 1, 1)", "(1, 8, 1)", "(1, 4, 2)", "(2, 2, 2)", "(1, 2, 4)"]  # sampled on
STEP_MESHES = MESHES[:4]  # trained on
TOL = 1e-5


# mesh_checks.py's sections in two subprocesses side by side (about equal halves of its CPU time), so that
# this module's fixture keeps both cores busy whatever the other pytest worker does
SECTION_GROUPS = (("step", "kernels", "sample"), ("port",))


@pytest.fixture(scope="session")
def checks(run_once):
    def produce(folder):
        env = dict(os.environ, XLA_FLAGS=host_device_flags(8), JAX_PLATFORMS="cpu")
        procs = []
        for i, sections in enumerate(SECTION_GROUPS):
            cmd = [sys.executable, str(HERE / "mesh_checks.py"), str(folder / f"part{i}.json"), *sections]
            log = open(folder / f"part{i}.log", "w")  # noqa: SIM115 (closed below)
            procs.append(
                (subprocess.Popen(cmd, env=env, cwd=HERE.parents[1], stdout=log, stderr=subprocess.STDOUT), log)
            )
        try:
            for proc, _ in procs:
                proc.wait(timeout=900)
        finally:
            for proc, log in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log.close()
        result = {}
        for i, (proc, _) in enumerate(procs):
            if proc.returncode:
                tail = (folder / f"part{i}.log").read_text()[-6000:]
                pytest.fail(f"mesh_checks.py {' '.join(SECTION_GROUPS[i])} failed ({proc.returncode}):\n{tail}")
            result.update(json.loads((folder / f"part{i}.json").read_text()))
        (folder / "result.json").write_text(json.dumps(result))

    return run_once("mesh_checks", produce)


def test_eight_devices(checks):
    assert checks["devices"] == 8


@pytest.mark.parametrize("mesh", STEP_MESHES)
def test_train_step_matches_single_device(checks, mesh):
    r = checks["step"][mesh]
    assert r["step"] == 1
    for key in ("loss", "grad_norm", "clipfrac", "params", "score_logp", "score_entropy"):
        assert r[key] <= TOL, (mesh, key, r[key])
    # the comparison is not vacuous: the update moved the params by much more than the tolerance
    assert checks["step_reference_param_change"] > 5 * TOL
    assert r["embed_devices"] == 8


def test_params_and_optimizer_state_are_sharded(checks):
    fsdp = checks["step"]["(1, 8, 1)"]
    assert fsdp["embed_spec"] == "P('tensor', 'fsdp')" and fsdp["mu_spec"] == fsdp["embed_spec"]
    assert "'tensor'" in checks["step"]["(1, 4, 2)"]["kv_spec"]  # 2 K/V heads split over tensor=2
    assert sum(r["scored"] for r in checks["step"].values()) == 2


def test_clear_errors(checks):
    e = checks["errors"]
    assert "8 devices cannot be split into 3" in e["impossible_shape"]
    assert "needs 4 devices but 8 are used" in e["too_few_axes_product"]
    assert "multiple of data x fsdp = 8" in e["rows_not_divisible"]


@pytest.mark.parametrize("mesh", MESHES)
def test_greedy_sampling_is_identical(checks, mesh):
    r = checks["sample"][mesh]
    assert r["tokens_equal"] and r["mask_equal"], mesh
    assert r["logp"] <= 1e-4, (mesh, r["logp"])
    # a page pool per data x fsdp shard (a tensor group shares one), on every mesh; a device holds its
    # shard's pages ([KV, pages, page, Hd] = [2, 8, 2, 16] per shard) of its share of the K/V heads: split
    # over tensor = 2, replicated over tensor = 4 (2 K/V heads)
    assert r["paged"], mesh
    kv = {"(1, 4, 2)": 1, "(2, 2, 2)": 1}.get(mesh, 2)
    assert r["pool_shard_shape"] == [kv, 8, 2, 16], (mesh, r["pool_shard_shape"])
    # the default pool counts a device's share of a page: half of 1 GiB free per device in pages of 16
    # positions x 2 layers x K and V x kv heads x 16 dims x 4 bytes
    assert r["pool_share_1gib"] == (1 << 29) // (16 * 2 * 2 * kv * 16 * 4), (mesh, r["pool_share_1gib"])
    # a paged-attention kernel (opaque to the partitioner) runs per shard with whole K/V heads: asked for on
    # a tensor axis, a clear error (auto takes the XLA path there)
    if mesh.endswith(" 1)"):
        assert r["kernel_error"] is None, (mesh, r["kernel_error"])
    else:
        assert "not on a mesh with tensor =" in r["kernel_error"] and "use auto or xla" in r["kernel_error"], r


@pytest.mark.parametrize("mesh", ["(8, 1, 1)", "(2, 2, 2)"])
def test_continuous_batching_on_mesh_equals_one_device(checks, mesh):
    """Sampled rows through 8 slots sharded over the mesh (one page pool per data x fsdp shard; on
    (2, 2, 2) its K/V heads split over tensor; replicated heads, tensor = 4, are checked greedy above)
    equal one device's (3 slots) and the static loop's: a row's draws depend on (seed, row, position)
    only."""
    r = checks["sample"][mesh]["continuous"]
    assert r["tokens_equal_one_device"] and r["tokens_equal_static"] and r["lengths_equal_static"], (mesh, r)
    assert r["logp"] <= 1e-4 and r["distinct_lengths"] > 2, (mesh, r)


def test_paged_pools_near_their_minimum_on_mesh(checks):
    """Two shards, each pool one page above its minimum, rows in a shuffled order: rows are preempted (the
    oldest never), every row finishes, and the rows equal the static loop's."""
    r = checks["sample_paged_tight"]
    assert r["tokens_equal_static"] and r["lengths_equal_static"] and r["logp"] <= 1e-4, r
    assert r["devices"] == 2 and r["preemptions"] > 0 and r["peak_pages"] == r["pool_pages"], r


def test_sampler_weights_replicated_over_data_and_fsdp(checks):
    assert checks["sample"]["(1, 8, 1)"]["wqkv_spec"] == "P(None, None)"
    assert checks["sample"]["(2, 2, 2)"]["wqkv_spec"] == "P(None, 'tensor')"


def test_run_moves_between_meshes(checks):
    assert checks["port_stopped_at"] == 1 and checks["port_steps"] == [1, 2]
    assert {"loss", "grad_norm", "reward", "entropy"} <= set(checks["port_metric_keys"])
    for where in ("222", "single"):
        assert checks[f"port_{where}_metrics"] <= TOL, (where, checks[f"port_{where}_metrics"])
        assert checks[f"port_{where}_params"] <= TOL, (where, checks[f"port_{where}_params"])


def test_resume_refuses_other_config_changes(checks):
    msg = checks["port_changed_config_error"]
    assert "optim.lr" in msg and "train.num_steps" in msg and "mesh" in msg


@pytest.mark.parametrize("kind", ["pallas_tpu", "pallas_gpu"])
def test_attention_kernels_run_per_shard(checks, kind):
    """On a mesh the opaque kernel call is wrapped in shard_map (only there), equal to the dense formula."""
    r = checks["kernels"][kind]
    assert r["max_diff"] <= TOL and r["shard_map_on_mesh"] and not r["shard_map_off_mesh"], r

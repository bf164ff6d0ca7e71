"""The RL loop end to end on the demo's smoke preset: runs, resume equivalence, NaN stop, validation."""

import importlib.util
import json
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import demo
from jaxrlvr.train import config as config_lib
from jaxrlvr.train.checkpoint import load_params
from jaxrlvr.train.loop import TrainingError, train
from jaxrlvr.train.metrics import read_metrics


def smoke(**over):
    c = demo.get_config("smoke")
    c.train.packing = True  # the library default (the demo itself trains padded rows); tested both ways here
    c.log.tensorboard = False
    c.log.plots = False
    return config_lib.set_dotted(c, over)


HAVE_WANDB = importlib.util.find_spec("wandb") is not None


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The demo's smoke run, 4 steps; with W&B logging (offline, into WORKDIR/wandb) when wandb is installed."""
    wd = tmp_path_factory.mktemp("full")
    over = {"train.num_steps": 4}
    if HAVE_WANDB:
        over.update({"log.wandb": True, "log.wandb_mode": "offline"})
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("WANDB_DIR", raising=False)
        summary = train(smoke(**over), str(wd), log=lambda *_: None)
    return wd, summary


def test_smoke_run_writes_everything(full_run):
    wd, summary = full_run
    assert 0.0 <= summary["heldout_accuracy_before"] <= 1.0 and 0.0 <= summary["heldout_accuracy_after"] <= 1.0
    assert json.loads((wd / "summary.json").read_text())["steps"] == 4
    recs = read_metrics(wd / "metrics.jsonl")
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    for key in (
        "reward",
        "accuracy",
        "entropy",
        "entropy_pos",
        "entropy_neg",
        "clipfrac_high",
        "grad_norm",
        "lr",
        "response_length_mean",
        "zero_std_groups",
        "time_rollout",
        "tokens_per_s_rollout",
        "approx_kl",
        "skipped_updates",
        "skipped_nonfinite_update",
    ):
        assert key in recs[-1], key
    assert recs[-1]["skipped_updates"] == 0 and recs[-1]["skipped_nonfinite_update"] == 0
    cfg, params = load_params(wd)
    assert cfg.vocab_size == 101 and jax.tree.leaves(params)


@pytest.mark.skipif(not HAVE_WANDB, reason="the wandb extra is not installed (pip install -e '.[wandb]')")
def test_wandb_offline_run_holds_the_logged_scalars_and_the_config(full_run):
    wd, _ = full_run
    run_id = (wd / "wandb_run_id").read_text().strip()
    (run_file,) = (wd / "wandb" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    data = run_file.read_bytes()  # W&B's record log: protobuf records, keys and JSON values as plain bytes
    for key in read_metrics(wd / "metrics.jsonl")[-1]:
        assert key.encode() in data, key
    assert b'"num_steps":4' in data and b"wandb_mode" in data  # the config as saved in config.json


def test_wandb_without_the_package_is_one_error_naming_the_extra(monkeypatch):
    from jaxrlvr.train.metrics import wandb_mode

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ValueError, match=r"wandb package is not installed.*pip install -e '\.\[wandb\]'"):
        config_lib.validate(smoke(**{"log.wandb": True}))
    with pytest.raises(ValueError, match="log.wandb_mode='cloud'"):
        config_lib.validate(smoke(**{"log.wandb_mode": "cloud"}))
    home = {"HOME": "/nonexistent", "NETRC": "/nonexistent/.netrc"}
    assert wandb_mode("auto", home) == "offline" and wandb_mode("auto", {**home, "WANDB_API_KEY": "k"}) == "online"
    assert wandb_mode("auto", {**home, "WANDB_MODE": "disabled"}) == "disabled" and wandb_mode("online", {}) == "online"


def test_resume_is_exact(full_run, tmp_path):
    wd, _ = full_run
    c = smoke(**{"train.num_steps": 4})
    first = train(c, str(tmp_path), log=lambda *_: None, stop_after=2)
    assert first["stopped_at"] == 2
    train(c, str(tmp_path), log=lambda *_: None)
    a, b = read_metrics(wd / "metrics.jsonl"), read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b, strict=True):
        for k, v in ra.items():
            if k.startswith("time") or k.startswith("tokens_per_s"):
                continue
            if isinstance(v, float):
                assert abs(v - rb[k]) <= 1e-6, (ra["step"], k, v, rb[k])
            else:
                assert v == rb[k], (ra["step"], k)
    _, pa = load_params(wd)
    _, pb = load_params(tmp_path)
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6)


def test_old_logp_from_the_first_update_matches_scoring_every_row(full_run, tmp_path):
    """``train.reuse_first_old_logp`` (on in ``full_run``) takes the first mini-batch's old log-probs and
    entropies from its own update instead of a scoring pass: the metrics are those of scoring every row."""
    wd, _ = full_run
    train(smoke(**{"train.num_steps": 2, "train.reuse_first_old_logp": False}), str(tmp_path), log=lambda *_: None)
    for a, b in zip(read_metrics(wd / "metrics.jsonl")[:2], read_metrics(tmp_path / "metrics.jsonl"), strict=True):
        assert set(a) == set(b)
        for k, v in a.items():
            if isinstance(v, float) and not k.startswith(("time", "tokens_per_s")):
                assert abs(v - b[k]) <= 1e-5 * max(1.0, abs(v)), (a["step"], k, v, b[k])


@pytest.mark.slow
def test_padded_updates_match_packed_ones(full_run, tmp_path):
    """``train.packing=False`` trains on padded rows: the first step (same rollout) matches the packed run."""
    wd, _ = full_run
    train(smoke(**{"train.num_steps": 1, "train.packing": False}), str(tmp_path), log=lambda *_: None)
    a, b = read_metrics(wd / "metrics.jsonl")[0], read_metrics(tmp_path / "metrics.jsonl")[0]
    for k in ("reward", "loss", "grad_norm", "entropy", "clipfrac", "approx_kl"):
        assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(a[k])), (k, a[k], b[k])


def test_non_finite_updates_stop_the_run(full_run, tmp_path):
    from jaxrlvr.models.checkpoint import save_params

    wd, _ = full_run
    cfg, params = load_params(wd)
    bad = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), params)
    save_params(tmp_path / "nan_ckpt", cfg, bad)
    c = smoke(
        **{
            "model.init_ckpt": str(tmp_path / "nan_ckpt"),
            "sft.steps": 0,
            "train.num_steps": 5,
            "train.max_consecutive_skips": 2,
        }
    )
    with pytest.raises(TrainingError, match="2 steps in a row had only non-finite updates"):
        train(c, str(tmp_path / "run"), log=lambda *_: None)


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("rollout.group_size", 1, "group_size"),
        ("train.mini_batch_prompts", 3, "not divisible by train.mini_batch_prompts"),
        ("train.micro_batch_size", 5, "divisible by train.micro_batch_size"),
        ("train.max_tokens_per_micro_batch", 16, "train.max_tokens_per_micro_batch=16 cannot hold"),
        ("model.hf_path", "/no/such/dir", "model.hf_path='/no/such/dir' does not exist"),
        ("data.source", "file", "data.path=''"),
        ("algo.loss_agg_mode", "mean", "loss_agg_mode"),
        ("optim.schedule", "linear", "optim.schedule"),
        ("optim.lr", float("inf"), "optim.lr must be a finite number"),
        ("rollout.top_p", 0.0, "rollout.top_p must lie in"),
        ("rollout.top_p", 1.5, "rollout.top_p must lie in"),
        ("rollout.top_k", -1, "rollout.top_k must be >= 0"),
        ("checkpoint.keep", 0, "checkpoint.keep=0: must be >= 1"),
        ("train.schedule_epochs", 1, "train.schedule_epochs=1: use 0"),
    ],
)
def test_config_validation(key, value, match):
    with pytest.raises(ValueError, match=match):
        config_lib.validate(smoke(**{key: value}))


def test_decode_kernel_needs_whole_heads_on_the_sampling_mesh():
    with pytest.raises(ValueError, match=r"rollout.decode_kernel='pallas_gpu_interpret' with mesh.shape=\(1, 1, 2\)"):
        config_lib.validate(smoke(**{"mesh.shape": (1, 1, 2), "rollout.decode_kernel": "pallas_gpu_interpret"}))
    config_lib.validate(smoke(**{"mesh.shape": (1, 1, 2), "rollout.decode_kernel": "xla"}))


def test_unknown_config_key_is_an_error():
    c = demo.get_config("smoke")
    c.lock()
    with pytest.raises(AttributeError):
        c.train.no_such_key = 1
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        demo.get_config("fast")


def test_position_shaping_auto_start_follows_the_stage_detector():
    from configs import position_shaping
    from jaxrlvr.train.controllers import position_active as _position_active

    c = position_shaping.get_config("smoke,auto")
    assert c.train.position_auto and tuple(c.train.position_window) == (1, 1)
    stage = {"entropy": [], "accuracy": [], "plateau_at": None}
    assert [_position_active(c, stage, s) for s in range(5)] == [0.0] * 5
    stage["plateau_at"] = 3
    c.train.position_window = (1, 2)
    assert [_position_active(c, stage, s) for s in range(6)] == [0, 0, 0, 1, 1, 0]
    fixed = position_shaping.get_config("smoke")
    assert [_position_active(fixed, stage, s) for s in range(3)] == [0, 1, 0]


def test_prompt_stream_shards_are_slices_of_the_global_batches():
    from jaxrlvr.train.loop import PromptStream

    rows = [{"id": i} for i in range(13)]
    whole = PromptStream(rows, 6, seed=3)
    shards = [PromptStream(rows, 6, seed=3, shard_index=i, shard_count=3) for i in range(3)]
    for _ in range(5):  # past the first epoch: the shuffle repeats consistently
        assert [r["id"] for r in next(whole)] == [r["id"] for s in shards for r in next(s)]
    assert all(s.get_state() == whole.get_state() for s in shards)  # resumable on any process count
    moved = PromptStream(rows, 6, seed=3)
    moved.set_state(shards[1].get_state())
    assert next(moved) == next(whole)


def test_prompt_stream_rejects_bad_shards():
    from jaxrlvr.train.loop import PromptStream

    rows = [{"id": i} for i in range(8)]
    with pytest.raises(ValueError, match="prompts_per_step=6 is not divisible by the number of processes \\(4\\)"):
        PromptStream(rows, 6, seed=0, shard_index=0, shard_count=4)
    with pytest.raises(ValueError, match="shard_index=2"):
        PromptStream(rows, 4, seed=0, shard_index=2, shard_count=2)
    with pytest.raises(ValueError, match="no training rows"):
        PromptStream([], 4, seed=0)


# ---------------------------------------------------------------------------------------------- faults
def _copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _flip_bytes(step_dir):
    """Flips bytes in the largest tensor file of a checkpoint step (what a bad disk or copy does)."""
    files = sorted((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    target = files[-1]
    data = bytearray(target.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    target.write_bytes(bytes(data))
    return target


def test_damaged_latest_checkpoint_falls_back_with_a_warning(full_run, tmp_path):
    wd, _ = full_run
    run = _copy_run(wd, tmp_path / "run")
    ckpts = run / "checkpoints"
    assert sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) == [3, 4]
    flipped = _flip_bytes(ckpts / "4")
    (ckpts / "9").mkdir()  # an empty step folder (a save killed before it wrote anything)
    shutil.copytree(ckpts / "3", ckpts / "8")  # a renamed folder: the step recorded inside decides
    shutil.copytree(ckpts / "3", ckpts / "99999999999999999999")  # not a step this trainer writes
    lines = []
    summary = train(smoke(**{"train.num_steps": 4}), str(run), log=lines.append)
    text = "\n".join(lines)
    assert "incomplete checkpoint folder" in text and str(ckpts / "9") in text
    assert "checkpoint step 4" in text and "damaged" in text and str(flipped) in text
    assert "its folder says step 8 but the checkpoint records step 3" in text
    assert "resumed from step 3" in text and str(ckpts / "99999999999999999999") in text
    assert (run / "checkpoints_damaged" / "4").is_dir() and (run / "checkpoints_damaged" / "8").is_dir()
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4]  # step 4 redone, once
    _, params = load_params(run)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))
    assert summary["steps"] == 4


def test_every_checkpoint_damaged_is_an_error_naming_the_files(full_run, tmp_path):
    from jaxrlvr.train.checkpoint import CheckpointError

    wd, _ = full_run
    run = _copy_run(wd, tmp_path / "run")
    _flip_bytes(run / "checkpoints" / "4")
    missing = sorted(p for p in (run / "checkpoints" / "3" / "state").rglob("*") if p.is_file())[-1]
    missing.unlink()
    with pytest.raises(CheckpointError, match="no intact checkpoint") as e:
        train(smoke(**{"train.num_steps": 4}), str(run), log=lambda *_: None)
    assert f"missing file {missing}" in str(e.value) and "checksum mismatch" in str(e.value)


def test_metrics_file_rewrite_and_malformed_lines(tmp_path):
    from jaxrlvr.runs import MetricsFileError
    from jaxrlvr.train.metrics import MetricsWriter

    w = MetricsWriter(tmp_path, tensorboard=False)
    for step in (1, 2, 3):
        w.write(step, {"reward": 0.5})
    w.close()
    path = tmp_path / "metrics.jsonl"
    with open(path, "a") as f:
        f.write('{"step": 4, "rew')  # torn by a kill during an append
    with pytest.raises(MetricsFileError, match="metrics.jsonl:4: malformed"):
        read_metrics(path)
    w = MetricsWriter(tmp_path, tensorboard=False)
    with pytest.warns(UserWarning, match="torn last line"):
        w.truncate_after(2)
    w.close()
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    assert not path.with_name("metrics.jsonl.tmp").exists()
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(MetricsFileError, match="metrics.jsonl:2: malformed"):
        read_metrics(path, torn_tail="drop")  # only an unterminated last line counts as torn


def test_infinite_learning_rate_from_the_command_line_fails_before_training(tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "scripts/train.py", "--config", "configs/demo.py:smoke", "--config.optim.lr=inf"]
    out = subprocess.run(cmd + ["--workdir", str(tmp_path / "x")], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "optim.lr must be a finite number > 0, got inf" in out.stderr + out.stdout
    assert not (tmp_path / "x" / "checkpoints").exists()


def test_skipped_bad_rows_are_counted(tmp_path):
    from jaxrlvr.data.tokenizer import CharTokenizer
    from jaxrlvr.train.setup import build_data

    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"problem": "1+1", "answer": "2"}\n{"problem": "caf\xe9"}\nnot json\n')
    c = smoke(**{"data.source": "file", "data.path": str(path), "data.template": "plain_boxed"})
    with pytest.raises(Exception, match="d.jsonl:2"):
        build_data(c, CharTokenizer())
    c = smoke(
        **{"data.source": "file", "data.path": str(path), "data.template": "plain_boxed", "data.skip_bad_rows": True}
    )
    rows, heldout, n_bad = build_data(c, CharTokenizer())
    assert len(rows) == 1 and heldout == [] and n_bad == 2

"""The trainer's hint when every response of a step was wrong and ran to rollout.max_new_tokens (what a random
model gives: reward = the incorrect reward plus the full overlong penalty, every step), on the command line."""


def test_random_model_run_prints_the_hint(run_cli, tmp_path):
    # The demo's char model with no SFT warm start is random; top_k=1 makes it deterministic that no
    # response reaches EOS (its argmax token is never EOS here), as with a smoke preset on a random checkpoint.
    proc = run_cli(
        "scripts/train.py", "--config", "configs/demo.py:smoke", "--workdir", tmp_path / "run",
        "--config.sft.steps=0", "--config.rollout.top_k=1", "--config.rollout.max_new_tokens=8",
        "--config.train.num_steps=1", "--config.data.heldout=0", "--config.log.tensorboard=False",
        "--config.log.plots=False",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "hint: every response of step 1 was wrong and ran to rollout.max_new_tokens=8" in proc.stdout
    assert "random or untrained model" in proc.stdout and "step 1/1 reward" in proc.stdout

"""The Llama preset of the second paper (configs/llama_revisiting.py): its Appendix F settings and smoke variant."""

from configs import llama_revisiting


def test_appendix_f_settings():
    c = llama_revisiting.get_config("clip_higher")
    assert c.model.preset == "llama-3.1-8b-instruct" and c.data.template == "llama3_math_cot"
    assert (c.rollout.prompts_per_step, c.rollout.group_size) == (256, 16)
    assert (c.rollout.temperature, c.rollout.max_new_tokens, c.optim.schedule) == (1.0, 4096, "cosine")
    assert c.eval.benchmarks == "math500" and c.eval.every > 0
    assert (c.algo.clip_low, c.algo.clip_high) == (0.2, 0.28)  # entropy_study's setting presets apply


def test_smoke_variant_is_the_tiny_llama():
    """(tests/train/test_configs.py runs it for 2 RL steps.)"""
    c = llama_revisiting.get_config("smoke")
    assert c.model.preset == "tiny-llama" and c.tokenizer == "char" and c.eval.every == 0

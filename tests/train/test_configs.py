"""Config files' defaults (every smoke preset runs from the command line in tests/cli/test_presets.py)."""

from configs import demo


def test_demo_config_is_the_readme_default():
    c = demo.get_config()
    assert c.tokenizer == "char" and c.data.source == "synthetic" and c.sft.steps > 0

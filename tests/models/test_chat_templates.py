"""The Llama-3.1-Instruct and Qwen3 chat formats as named prompt templates, against known renderings."""

from jaxrlvr.data import CharTokenizer, get_template
from jaxrlvr.data.templates import BOXED_INSTRUCTION

PROBLEM = "What is $1+1$?"
TOK = CharTokenizer()  # plain templates need no chat template from the tokenizer


def test_llama31_instruct_rendering():
    # Meta's Llama 3.1 prompt format; the system header with the default date is what the shipped chat
    # template writes for [system, user] messages with add_generation_prompt=True.
    want = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n\n"
        "Please reason step by step, and put your final answer within \\boxed{}.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
        "What is $1+1$?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    t = get_template("llama3_math_cot")
    assert t.render(PROBLEM, TOK) == want and t.answer_format == "boxed"
    dapo = get_template("llama3_dapo")
    text = dapo.render(PROBLEM, TOK)
    assert dapo.answer_format == "answer_line"
    assert "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nSolve the" in text
    assert text.endswith('after "Answer:".<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n')


def test_qwen3_rendering():
    want = f"<|im_start|>user\nWhat is $1+1$?\n{BOXED_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"
    assert get_template("qwen3_math_cot").render(PROBLEM, TOK) == want
    # enable_thinking=False: the generation prompt carries an empty think block
    assert get_template("qwen3_math_cot_nothink").render(PROBLEM, TOK) == want + "<think>\n\n</think>\n\n"
    dapo = get_template("qwen3_dapo")
    assert dapo.answer_format == "answer_line"
    assert dapo.render(PROBLEM, TOK).startswith("<|im_start|>user\nSolve the following math problem step by step.")


def test_qwen_markup_is_single_special_tokens(shared_data):
    from jaxrlvr.data.tokenizer import load_tokenizer

    tok = load_tokenizer(shared_data / "qwen2.5")  # Qwen3 keeps Qwen2.5's chat special tokens
    ids = get_template("qwen3_math_cot").encode(PROBLEM, tok)
    assert ids[0] == 151644 and ids[-3:-1] == [151644, 77091]  # <|im_start|> ... <|im_start|>assistant
    assert tok.decode(ids, skip_special_tokens=False) == get_template("qwen3_math_cot").render(PROBLEM, tok)

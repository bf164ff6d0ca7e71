"""Prompt templates by name: a template turns a problem into prompt text, and with a tokenizer into ids.

Built-in templates:

- ``qwen_math_cot``: the Qwen2.5-Math chain-of-thought chat format: system message "Please reason step by
  step, and put your final answer within \\boxed{}.", the problem as the user message, then the assistant
  turn. Answers are read from ``\\boxed{}``.
- ``plain_boxed``: no chat markup (for base models): the problem, then the same instruction on its own
  line. Answers are read from ``\\boxed{}``.
- ``dapo_answer``: the DAPO-Math-17k prompt as a user message of the tokenizer's chat template: solve step
  by step, last line ``Answer: $Answer``. Answers are read from the ``Answer:`` line (a ``\\boxed{}`` is
  accepted too).
- ``llama3_math_cot`` / ``llama3_dapo``: the Llama-3.1-Instruct chat format written out (no tokenizer chat
  template needed): ``<|begin_of_text|>``, the system header that the Llama 3.1 template always emits
  (knowledge cutoff "December 2023", date "26 Jul 2024", then the system message, here
  :data:`BOXED_INSTRUCTION` or none), the user turn, the assistant header. ``llama3_dapo`` puts the DAPO
  prompt in the user turn (``Answer:`` line).
- ``qwen3_math_cot`` / ``qwen3_math_cot_nothink`` / ``qwen3_dapo``: the Qwen3 chat format written out
  (``<|im_start|>user ... <|im_end|>``, no default system message), the instruction in the user turn as
  Qwen3's model card recommends for math; ``_nothink`` ends with the empty think block that Qwen3's template
  writes for ``enable_thinking=False``.

The chat formats are rendered from their documented layouts (Meta's Llama 3.1 prompt-format page; the Qwen3
chat template), so they need no tokenizer chat template; a problem is inserted verbatim (the Llama template
would also strip surrounding whitespace). Their markup tokens are single special tokens of the real
tokenizers.

:func:`register_template` adds a template; the name is then usable in every config.
"""

from __future__ import annotations

import dataclasses

from jaxrlvr.data.tokenizer import Tokenizer

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
DAPO_PREFIX = (
    "Solve the following math problem step by step. The last line of your response should be of the form "
    "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
)
DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'

_KINDS = ("chat", "plain")
_ANSWER_FORMATS = ("boxed", "answer_line")


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
    """How a problem becomes a prompt.

    Attributes:
      name: the registry name.
      kind: ``"chat"`` (rendered with the tokenizer's chat template, generation prompt added) or ``"plain"``.
      user: the user text (chat) or the whole prompt (plain); ``{problem}`` is replaced by the problem (no
        other braces are interpreted, so LaTeX in problems is safe).
      system: the system message of a chat template (None: no system message).
      answer_format: where answers are read from: ``"boxed"`` or ``"answer_line"`` (DAPO ``Answer:``).
    """

    name: str
    kind: str
    user: str
    system: str | None = None
    answer_format: str = "boxed"

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"PromptTemplate.kind must be one of {_KINDS}, got {self.kind!r}")
        if self.answer_format not in _ANSWER_FORMATS:
            raise ValueError(
                f"PromptTemplate.answer_format must be one of {_ANSWER_FORMATS}, got {self.answer_format!r}"
            )
        if "{problem}" not in self.user:
            raise ValueError(f"PromptTemplate {self.name!r}: user text has no {{problem}} placeholder")

    def messages(self, problem: str) -> list[dict]:
        msgs = []
        if self.system is not None:
            msgs.append({"role": "system", "content": self.system})
        msgs.append({"role": "user", "content": self.user.replace("{problem}", problem)})
        return msgs

    def render(self, problem: str, tokenizer: Tokenizer) -> str:
        """The prompt text (chat templates need the tokenizer for their markup)."""
        if not isinstance(problem, str):
            raise TypeError(f"problem must be a string, got {type(problem).__name__}")
        if self.kind == "plain":
            return self.user.replace("{problem}", problem)
        return tokenizer.apply_chat_template(self.messages(problem), add_generation_prompt=True)

    def encode(self, problem: str, tokenizer: Tokenizer) -> list[int]:
        """The prompt token ids."""
        return [int(i) for i in tokenizer.encode(self.render(problem, tokenizer))]


TEMPLATES: dict[str, PromptTemplate] = {}


def register_template(template: PromptTemplate, *, overwrite: bool = False) -> PromptTemplate:
    """Adds ``template`` to the registry under its name."""
    if template.name in TEMPLATES and not overwrite:
        raise ValueError(f"prompt template {template.name!r} is already registered")
    TEMPLATES[template.name] = template
    return template


def get_template(name: str | PromptTemplate) -> PromptTemplate:
    """The template called ``name`` (a PromptTemplate passes through)."""
    if isinstance(name, PromptTemplate):
        return name
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt template {name!r}; known: {sorted(TEMPLATES)}") from None


def build_prompt(problem: str, template: str | PromptTemplate, tokenizer: Tokenizer) -> list[int]:
    """Token ids of ``problem`` under the named template."""
    return get_template(template).encode(problem, tokenizer)


register_template(PromptTemplate("qwen_math_cot", kind="chat", user="{problem}", system=BOXED_INSTRUCTION))
register_template(PromptTemplate("plain_boxed", kind="plain", user="{problem}\n" + BOXED_INSTRUCTION + "\n"))
register_template(
    PromptTemplate(
        "dapo_answer", kind="chat", user=DAPO_PREFIX + "{problem}" + DAPO_SUFFIX, answer_format="answer_line"
    )
)


# Llama 3.1 Instruct (Meta's Llama 3.1 prompt-format documentation): the chat template always writes a
# system header carrying the knowledge cutoff and a date ("26 Jul 2024" unless the caller sets one).
LLAMA3_SYSTEM_HEADER = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
)


def llama3_chat(user: str, system: str = "") -> str:
    """The Llama-3.1-Instruct rendering of one user turn and the assistant header (``{problem}`` kept)."""
    return (
        f"{LLAMA3_SYSTEM_HEADER}{system}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def qwen3_chat(user: str, system: str | None = None, thinking: bool = True) -> str:
    """The Qwen3 rendering of one user turn and the generation prompt (``{problem}`` kept); without
    ``thinking``, the empty think block of ``enable_thinking=False``."""
    head = "" if system is None else f"<|im_start|>system\n{system}<|im_end|>\n"
    tail = "" if thinking else "<think>\n\n</think>\n\n"
    return f"{head}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{tail}"


_QWEN3_MATH_USER = "{problem}\n" + BOXED_INSTRUCTION
_DAPO_USER = DAPO_PREFIX + "{problem}" + DAPO_SUFFIX
for _name, _user, _answer_format in (
    ("llama3_math_cot", llama3_chat("{problem}", BOXED_INSTRUCTION), "boxed"),
    ("llama3_dapo", llama3_chat(_DAPO_USER), "answer_line"),
    ("qwen3_math_cot", qwen3_chat(_QWEN3_MATH_USER), "boxed"),
    ("qwen3_math_cot_nothink", qwen3_chat(_QWEN3_MATH_USER, thinking=False), "boxed"),
    ("qwen3_dapo", qwen3_chat(_DAPO_USER), "answer_line"),
):
    register_template(PromptTemplate(_name, kind="plain", user=_user, answer_format=_answer_format))

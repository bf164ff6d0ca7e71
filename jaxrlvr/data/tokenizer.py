"""Tokenizers: the Hugging Face tokenizer of a local checkpoint folder, and a tiny character tokenizer.

Both implement the same small interface (:class:`Tokenizer`), which is all the rest of jaxrlvr uses:

- ``encode(text) -> list[int]`` (no special tokens added), ``decode(ids) -> str`` (special tokens dropped);
- ``eos_ids`` (every id that ends a response), ``eos_id`` (the first of them), ``pad_id``, ``vocab_size``;
- ``apply_chat_template(messages, add_generation_prompt=True) -> str`` (the text, not ids).

``load_tokenizer(path)`` loads the real Qwen2.5 tokenizer from a folder holding ``tokenizer.json`` or
``vocab.json`` + ``merges.txt`` (and ``tokenizer_config.json`` for the chat template). Nothing is fetched
from a hub: a missing folder or file is an error naming the path.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

# The Qwen chat format; used by the character tokenizer and as the fallback for HF tokenizers without one.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@runtime_checkable
class Tokenizer(Protocol):
    """What jaxrlvr needs from a tokenizer."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def eos_ids(self) -> tuple[int, ...]: ...

    @property
    def eos_id(self) -> int: ...

    @property
    def pad_id(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str: ...

    def apply_chat_template(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str: ...


def _render_chat(messages: Sequence[dict], add_generation_prompt: bool) -> str:
    """Renders the Qwen chat format without jinja (exactly what QWEN_CHAT_TEMPLATE produces)."""
    out = []
    for m in messages:
        if "role" not in m or "content" not in m:
            raise ValueError(f"chat message needs 'role' and 'content', got keys {sorted(m)}")
        out.append(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


# Tokens that end a response besides the tokenizer's own EOS, when the vocabulary has them: Qwen2.5 / Qwen3
# chat turns (<|im_end|>, <|endoftext|>) and Llama 3.x (<|eot_id|> ends a turn, <|eom_id|> a tool message,
# <|end_of_text|> the text), as in their generation_config.json files.
DEFAULT_EXTRA_EOS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>")


class HFTokenizer:
    """A `transformers` tokenizer loaded from a local folder, behind the :class:`Tokenizer` interface.

    For Qwen2.5 the end-of-response ids are ``<|im_end|>`` and ``<|endoftext|>`` (both end a sample:
    chat-formatted prompts stop at the first, base-model completions at the second); the pad id is
    ``<|endoftext|>`` as in the original tokenizer_config.json.
    """

    def __init__(self, path: str | os.PathLike, extra_eos_tokens: Sequence[str] = DEFAULT_EXTRA_EOS):
        import transformers  # heavy import; keep it out of module import time

        path = pathlib.Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"tokenizer folder not found: {path}")
        has_fast = (path / "tokenizer.json").is_file()
        has_bpe = (path / "vocab.json").is_file() and (path / "merges.txt").is_file()
        if not (has_fast or has_bpe):
            raise FileNotFoundError(f"no tokenizer files in {path}: expected tokenizer.json or vocab.json + merges.txt")
        self._tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        vocab = self._tok.get_vocab()
        eos = []
        if self._tok.eos_token_id is not None:
            eos.append(int(self._tok.eos_token_id))
        for t in extra_eos_tokens:
            if t in vocab and vocab[t] not in eos:
                eos.append(int(vocab[t]))
        if not eos:
            raise ValueError(f"tokenizer in {path} defines no end-of-sequence token")
        self._eos_ids = tuple(eos)
        pad = self._tok.pad_token_id
        self._pad_id = int(pad) if pad is not None else self._eos_ids[-1]
        self.path = path

    @property
    def vocab_size(self) -> int:
        return len(self._tok)

    @property
    def eos_ids(self) -> tuple[int, ...]:
        return self._eos_ids

    @property
    def eos_id(self) -> int:
        return self._eos_ids[0]

    @property
    def pad_id(self) -> int:
        return self._pad_id

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
        if getattr(self._tok, "chat_template", None):
            return self._tok.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
            )
        return _render_chat(messages, add_generation_prompt)


# Special tokens of the character tokenizer, in id order.
CHAR_SPECIALS = ("<pad>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>")


@dataclasses.dataclass(frozen=True)
class CharTokenizer:
    """A character-level tokenizer built in code (no files): the demo's tokenizer.

    Ids 0..4 are ``<pad>``, ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, ``<unk>``; then one id per
    character of ``alphabet`` in order. Special tokens written literally in the text are encoded as their
    single id, so the Qwen chat format works unchanged. Unknown characters map to ``<unk>`` (and are
    counted in ``encode``'s strict mode as an error).
    """

    alphabet: str = (
        "0123456789+-*/=()[]{}<>.,:;!?'\"\\^_$%&|#@~` \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    )
    strict: bool = False

    def __post_init__(self):
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError("CharTokenizer alphabet has repeated characters")

    @functools.cached_property
    def _char_to_id(self) -> dict[str, int]:  # built once per tokenizer (encode is called per row)
        return {c: i + len(CHAR_SPECIALS) for i, c in enumerate(self.alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(CHAR_SPECIALS) + len(self.alphabet)

    @property
    def eos_ids(self) -> tuple[int, ...]:
        return (CHAR_SPECIALS.index("<|im_end|>"), CHAR_SPECIALS.index("<|endoftext|>"))

    @property
    def eos_id(self) -> int:
        return self.eos_ids[0]

    @property
    def pad_id(self) -> int:
        return 0

    def encode(self, text: str) -> list[int]:
        table = self._char_to_id
        unk = CHAR_SPECIALS.index("<unk>")
        ids: list[int] = []
        i = 0
        while i < len(text):
            if text[i] == "<":
                for sid, s in enumerate(CHAR_SPECIALS):
                    if text.startswith(s, i):
                        ids.append(sid)
                        i += len(s)
                        break
                else:
                    ids.append(table["<"] if "<" in table else unk)
                    i += 1
                continue
            c = text[i]
            if c not in table:
                if self.strict:
                    raise ValueError(f"character {c!r} at offset {i} is not in the CharTokenizer alphabet")
                ids.append(unk)
            else:
                ids.append(table[c])
            i += 1
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        n_special = len(CHAR_SPECIALS)
        out = []
        for i in ids:
            i = int(i)
            if i < 0 or i >= self.vocab_size:
                raise ValueError(f"token id {i} is outside the CharTokenizer vocabulary [0, {self.vocab_size})")
            if i < n_special:
                if not skip_special_tokens:
                    out.append(CHAR_SPECIALS[i])
            else:
                out.append(self.alphabet[i - n_special])
        return "".join(out)

    def apply_chat_template(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
        return _render_chat(messages, add_generation_prompt)


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Loads the tokenizer of a local checkpoint folder; ``"char"`` gives the built-in CharTokenizer."""
    if str(path) == "char":
        return CharTokenizer()
    return HFTokenizer(path)

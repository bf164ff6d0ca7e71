"""Static shapes of a sampling call: padded prompt widths and counts, EOS-array length and the decode
segments per cache chunk. Few distinct values, so few programs get compiled."""

from __future__ import annotations


def bucket_prompt_length(n: int) -> int:
    """Padded prompt width: 16, 24, 32, 48, 64, 96, ... (powers of two and 1.5x powers of two), so padding
    wastes at most a third of the prefill while few widths (two per octave) get compiled."""
    b = 16
    while b < n:
        b = b * 3 // 2 if b & (b - 1) == 0 else b * 4 // 3
    return b


def eos_slots(n: int) -> int:
    """Length of the EOS-id array (a traced argument, so EOS sets of similar size share compilations)."""
    return max(4, 1 << (max(n, 1) - 1).bit_length())


def bucket_prompt_count(n: int) -> int:
    """Padded number of distinct prompts: powers of two up to 8, then multiples of 8."""
    if n <= 8:
        return 1 << (max(n, 1) - 1).bit_length()
    return -(-n // 8) * 8


def decode_segments(prompt_len: int, max_new_tokens: int, chunks: tuple[int, ...]):
    """Static ``(first_step, end_step, chunk)``: the decode steps (1 .. N-1) writing into each cache chunk.

    Step ``i`` writes slot ``P + i - 1``; each segment is one ``while_loop`` whose attention reads chunks
    ``0 .. chunk`` only.
    """
    out, lo = [], 0
    for c, n in enumerate(chunks):
        first = max(lo - prompt_len + 1, 1)
        end = min(lo + n - prompt_len + 1, max_new_tokens)
        if first < end:
            out.append((first, end, c))
        lo += n
    return tuple(out)

"""Rollouts: sample G responses per prompt, score them, and lay the batch out for the update.

Host-side glue between the sampler (device), the verifier pool (worker processes) and the pure algorithm
functions. Nothing here is jitted except what it calls.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from jaxrlvr import algos
from jaxrlvr.models import ModelConfig
from jaxrlvr.sampling.paged import PAGE_SIZE


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    """Sampling and reward settings of a rollout."""

    group_size: int = 8
    max_new_tokens: int = 64
    max_prompt_len: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    correct_reward: float = 1.0
    incorrect_reward: float = -1.0
    overlong_shaping: bool = False
    overlong_buffer: int = 16
    overlong_factor: float = 1.0
    page_size: int = PAGE_SIZE  # KV-cache page of the paged sampler (docs/sampler.md: why 16)
    decode_kernel: str = "auto"  # the paged decode's attention: auto | xla | pallas_gpu | pallas_tpu (docs/sampler.md)
    # Rollouts of steps t+1..t+k generated while step t updates, with params at most k steps old
    # (docs/training.md "Asynchronous rollouts"); 0: the synchronous loop, exactly
    max_staleness: int = 0

    def __post_init__(self):
        if self.group_size < 2:
            raise ValueError(f"rollout.group_size (G) must be >= 2 for group advantages, got {self.group_size}")
        if self.max_new_tokens < 1 or self.max_prompt_len < 1:
            raise ValueError(
                f"rollout.max_new_tokens={self.max_new_tokens} and max_prompt_len={self.max_prompt_len} must be >= 1"
            )
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"rollout.temperature must be a finite number > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"rollout.top_p must lie in (0, 1] (1: no nucleus cut), got {self.top_p}")
        if self.page_size < 1:
            raise ValueError(f"rollout.page_size (positions per KV-cache page) must be >= 1, got {self.page_size}")
        if isinstance(self.max_staleness, bool) or not isinstance(self.max_staleness, int) or self.max_staleness < 0:
            raise ValueError(
                f"rollout.max_staleness must be an integer >= 0 (0: synchronous), got {self.max_staleness!r}"
            )
        if self.top_k < 0:
            raise ValueError(f"rollout.top_k must be >= 0 (0: no top-k cut), got {self.top_k}")
        if self.overlong_shaping and not 0 < self.overlong_buffer <= self.max_new_tokens:
            raise ValueError(
                f"rollout.overlong_buffer={self.overlong_buffer} must lie in (0, max_new_tokens={self.max_new_tokens}]"
            )


def left_pad(prompts: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """[N, length] ids and mask; a prompt longer than ``length`` is an error naming its index."""
    ids = np.full((len(prompts), length), pad_id, np.int32)
    mask = np.zeros((len(prompts), length), np.int32)
    for i, p in enumerate(prompts):
        if len(p) > length:
            raise ValueError(f"prompt {i} has {len(p)} tokens, more than rollout.max_prompt_len={length}")
        if len(p):
            ids[i, length - len(p) :] = p
            mask[i, length - len(p) :] = 1
    return ids, mask


def rollout(
    model_cfg: ModelConfig,
    params,
    rows: Sequence[dict],
    *,
    cfg: RolloutConfig,
    tokenizer,
    score_fn: Callable[[list[str], list[str]], list[bool]],
    seed: int,
    generate_fn: Callable | None = None,
) -> dict[str, np.ndarray]:
    """Samples ``cfg.group_size`` responses for each row (``prompt_ids``, ``answer``) and scores them.

    Returns numpy arrays: ``input_ids``/``attention_mask`` [B, P+R] (prompt left-padded to
    ``max_prompt_len``), ``mask``/``tokens``/``sample_logp`` [B, R], ``lengths``, ``truncated``, ``correct``,
    ``rewards`` [B] (+1/-1, plus the DAPO overlong penalty on token length when enabled), ``texts`` and the
    gold ``answers`` [B].
    """
    from jaxrlvr.sampling import generate

    generate = generate_fn or generate  # e.g. a mesh placement's ``generate`` (same signature)
    g = cfg.group_size
    prompts = [list(r["prompt_ids"]) for r in rows]
    p_ids, p_mask = left_pad(prompts, cfg.max_prompt_len, tokenizer.pad_id)
    out = generate(
        model_cfg,
        params,
        prompts,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        num_samples=g,
        eos_ids=tuple(tokenizer.eos_ids),
        pad_id=tokenizer.pad_id,
        seed=seed,
        page_size=cfg.page_size,
        decode_kernel=cfg.decode_kernel,
    )
    tokens = np.asarray(out.tokens)
    mask = np.asarray(out.mask).astype(np.int32)
    lengths = np.asarray(out.lengths)
    texts = [tokenizer.decode(tokens[i, : lengths[i]]) for i in range(tokens.shape[0])]
    golds = [str(r["answer"]) for r in rows for _ in range(g)]
    correct = np.asarray(score_fn(texts, golds), dtype=bool)
    rewards = np.where(correct, cfg.correct_reward, cfg.incorrect_reward).astype(np.float32)
    if cfg.overlong_shaping:
        rewards = rewards + np.asarray(
            algos.overlong_penalty(
                lengths,
                max_len=cfg.max_new_tokens,
                buffer_len=cfg.overlong_buffer,
                factor=cfg.overlong_factor,
            )
        )
    rep = lambda x: np.repeat(x, g, axis=0)  # noqa: E731
    return {
        "input_ids": np.concatenate([rep(p_ids), tokens], axis=1),
        "attention_mask": np.concatenate([rep(p_mask), mask], axis=1),
        "tokens": tokens,
        "mask": mask,
        "sample_logp": np.asarray(out.logprobs, np.float32),
        "lengths": lengths,
        "truncated": np.asarray(out.truncated, bool),
        "correct": correct,
        "rewards": rewards,
        "texts": np.asarray(texts, dtype=object),
        "answers": np.asarray(golds, dtype=object),
    }


def concat_rollouts(parts: Sequence[dict]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


def select_groups(batch: dict, keep_P: np.ndarray, group_size: int) -> dict:
    """Rows of the kept groups (DAPO dynamic sampling)."""
    rows = np.repeat(np.asarray(keep_P, bool), group_size)
    return {k: v[rows] for k, v in batch.items()}

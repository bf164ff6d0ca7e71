"""Rollout sampling: jitted prefill + ``lax.while_loop`` decode, by default continuous batching over a
paged KV cache (``paged``), with exact greedy, temperature, top-k and top-p strategies. Entry point:
:func:`generate` (design: docs/sampler.md)."""

from jaxrlvr.sampling.api import generate
from jaxrlvr.sampling.inference import InferenceParams
from jaxrlvr.sampling.sampler import (
    SampleOutput,
    Sampler,
    bucket_prompt_count,
    bucket_prompt_length,
    prepare_params,
)
from jaxrlvr.sampling.strategies import SamplingParams, sample_tokens

__all__ = [
    "InferenceParams",
    "SampleOutput",
    "Sampler",
    "SamplingParams",
    "bucket_prompt_count",
    "bucket_prompt_length",
    "generate",
    "prepare_params",
    "sample_tokens",
]

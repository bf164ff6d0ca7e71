"""Decoder models of the Qwen2, Llama 3 and Qwen3 families in Flax: config, parameters, forward pass, KV
cache, Hugging Face checkpoints (docs/models.md)."""

from jaxrlvr.models.config import ARCHITECTURES, PRESETS, ModelConfig, RopeScaling
from jaxrlvr.models.decoder import positions_from_mask
from jaxrlvr.models.hf import CheckpointError, load_hf_checkpoint, read_hf_config, save_hf_checkpoint
from jaxrlvr.models.model import (
    abstract_params,
    forward,
    forward_with_cache,
    hidden_states,
    init_cache,
    init_params,
    lm_logits,
    param_logical_axes,
    token_logprobs_and_entropy,
)

__all__ = [
    "ARCHITECTURES",
    "PRESETS",
    "CheckpointError",
    "ModelConfig",
    "RopeScaling",
    "abstract_params",
    "forward",
    "forward_with_cache",
    "hidden_states",
    "init_cache",
    "init_params",
    "lm_logits",
    "load_hf_checkpoint",
    "param_logical_axes",
    "positions_from_mask",
    "read_hf_config",
    "save_hf_checkpoint",
    "token_logprobs_and_entropy",
]

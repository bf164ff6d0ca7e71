"""`ModelConfig`: the hyper-parameters of a Qwen2-architecture decoder, as a frozen (hashable) dataclass.

A config is a static argument of every jitted model function, so it holds only Python scalars and strings.
Build one from a preset (``ModelConfig.preset("qwen2.5-0.5b")``), from a Hugging Face ``config.json``
(``ModelConfig.from_hf_config(dict)``), or directly. ``dataclasses.replace`` changes a field, e.g. the
compute dtype: ``dataclasses.replace(cfg, dtype="bfloat16")``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
_REMAT = ("none", "full", "dots")
SUPPORTED_ARCHITECTURES = ("Qwen2ForCausalLM",)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Qwen2 decoder hyper-parameters.

    Attributes:
      vocab_size: rows of the embedding matrix (the padded model vocabulary, not the tokenizer's size).
      hidden_size: model width D.
      intermediate_size: SwiGLU width I.
      num_layers: decoder layers L.
      num_heads: query heads H.
      num_kv_heads: key/value heads (grouped-query attention; H % num_kv_heads == 0).
      head_dim: per-head width (D // H for every Qwen2.5 model).
      rope_theta: rotary base (1e6 for Qwen2.5, 1e4 for Qwen2.5-Math).
      rms_norm_eps: RMSNorm epsilon.
      tie_word_embeddings: LM head shares the embedding matrix (0.5B, 1.5B, 3B).
      attention_bias: q/k/v projections carry a bias (o-proj never does).
      max_position_embeddings: the context length; longer inputs are an error in the sampler.
      dtype: compute dtype of matmuls ("float32" | "bfloat16"); softmax, norms, logits stay float32.
      param_dtype: storage dtype of the parameters.
      remat: per-layer rematerialisation: "none", "full" (save nothing), "dots" (save matmul outputs).
      name: a label (preset name or "custom").
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    attention_bias: bool = True
    max_position_embeddings: int = 32768
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "none"
    name: str = "custom"

    def __post_init__(self):
        for f in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "max_position_embeddings",
        ):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"ModelConfig.{f} must be a positive int, got {v!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"ModelConfig.num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"ModelConfig.head_dim must be even for rotary embeddings, got {self.head_dim}")
        for f in ("dtype", "param_dtype"):
            if getattr(self, f) not in _DTYPES:
                raise ValueError(f"ModelConfig.{f}={getattr(self, f)!r} is not one of {sorted(_DTYPES)}")
        if self.remat not in _REMAT:
            raise ValueError(f"ModelConfig.remat={self.remat!r} is not one of {_REMAT}")
        if not self.rope_theta > 0:
            raise ValueError(f"ModelConfig.rope_theta must be > 0, got {self.rope_theta!r}")

    # ----------------------------------------------------------------------------------------------
    @property
    def jnp_dtype(self):
        return _DTYPES[self.dtype]

    @property
    def jnp_param_dtype(self):
        return _DTYPES[self.param_dtype]

    @property
    def group_size(self) -> int:
        """Query heads per key/value head."""
        return self.num_heads // self.num_kv_heads

    def num_params(self) -> int:
        """Exact parameter count (equals transformers' ``num_parameters()``)."""
        d, i, h, kv, hd = (
            self.hidden_size,
            self.intermediate_size,
            self.num_heads,
            self.num_kv_heads,
            self.head_dim,
        )
        attn = d * h * hd + 2 * d * kv * hd + h * hd * d
        if self.attention_bias:
            attn += h * hd + 2 * kv * hd
        layer = attn + 3 * d * i + 2 * d
        embed = self.vocab_size * d
        head = 0 if self.tie_word_embeddings else self.vocab_size * d
        return embed + self.num_layers * layer + d + head

    # ----------------------------------------------------------------------------------------------
    @classmethod
    def from_hf_config(cls, hf: dict[str, Any], **overrides) -> ModelConfig:
        """Reads a Hugging Face Qwen2 ``config.json`` dict.

        ``rope_theta`` is read at the top level (transformers 4.x) or inside ``rope_parameters``
        (transformers 5.x). An unsupported architecture, a rope scaling we do not implement, or a missing
        field is an error naming it.
        """
        archs = hf.get("architectures") or []
        model_type = hf.get("model_type")
        if model_type not in (None, "qwen2") or (archs and not set(archs) <= set(SUPPORTED_ARCHITECTURES)):
            raise ValueError(
                f"unsupported architecture: model_type={model_type!r}, architectures={archs!r}; "
                f"jaxrlvr implements {SUPPORTED_ARCHITECTURES} (model_type 'qwen2')"
            )
        if hf.get("hidden_act", "silu") != "silu":
            raise ValueError(f"unsupported hidden_act={hf['hidden_act']!r}; Qwen2 uses 'silu'")
        if hf.get("use_sliding_window", False):
            raise ValueError("use_sliding_window=true is not supported (no Qwen2.5 model uses it)")
        rope = hf.get("rope_parameters") or {}
        scaling = hf.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
        if rope_type not in ("default", None):
            raise ValueError(f"unsupported rope type {rope_type!r}; only the default rotary embedding is implemented")
        theta = hf.get("rope_theta", rope.get("rope_theta"))
        if theta is None:
            raise ValueError("config.json has no rope_theta (looked at the top level and in rope_parameters)")
        try:
            d, h = int(hf["hidden_size"]), int(hf["num_attention_heads"])
            kw = dict(
                vocab_size=int(hf["vocab_size"]),
                hidden_size=d,
                intermediate_size=int(hf["intermediate_size"]),
                num_layers=int(hf["num_hidden_layers"]),
                num_heads=h,
                num_kv_heads=int(hf.get("num_key_value_heads", h)),
                head_dim=int(hf.get("head_dim") or d // h),
                rope_theta=float(theta),
                rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
                tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
                max_position_embeddings=int(hf.get("max_position_embeddings", 32768)),
            )
        except KeyError as e:
            raise ValueError(f"config.json is missing the field {e.args[0]!r}") from None
        kw.update(overrides)
        return cls(**kw)

    def to_hf_config(self) -> dict[str, Any]:
        """A ``config.json`` dict that ``transformers`` loads as ``Qwen2ForCausalLM``."""
        if not self.attention_bias:
            raise ValueError("transformers' Qwen2 always has q/k/v biases; attention_bias=False cannot be exported")
        torch_dtype = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}[self.param_dtype]
        return {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "attention_dropout": 0.0,
            "hidden_act": "silu",
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings,
            "use_sliding_window": False,
            "sliding_window": None,
            "max_window_layers": self.num_layers,
            "torch_dtype": torch_dtype,
            "dtype": torch_dtype,
            "initializer_range": 0.02,
            "use_cache": True,
        }

    @classmethod
    def preset(cls, name: str, **overrides) -> ModelConfig:
        """A named preset: the real Qwen2.5 hyper-parameters, or a tiny model for tests and the demo."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; available: {sorted(PRESETS)}")
        kw = dict(PRESETS[name])
        kw.update(overrides)
        return cls(name=name, **kw)


def _qwen(vocab, d, i, layers, heads, kv, tied, theta=1e6, max_pos=32768):
    return dict(
        vocab_size=vocab,
        hidden_size=d,
        intermediate_size=i,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=d // heads,
        tie_word_embeddings=tied,
        rope_theta=theta,
        max_position_embeddings=max_pos,
    )


PRESETS: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": _qwen(151936, 896, 4864, 24, 14, 2, True),
    "qwen2.5-1.5b": _qwen(151936, 1536, 8960, 28, 12, 2, True, max_pos=131072),
    "qwen2.5-3b": _qwen(151936, 2048, 11008, 36, 16, 2, True),
    "qwen2.5-7b": _qwen(152064, 3584, 18944, 28, 28, 4, False, max_pos=131072),
    "qwen2.5-math-1.5b": _qwen(151936, 1536, 8960, 28, 12, 2, True, theta=1e4, max_pos=4096),
    "qwen2.5-math-7b": _qwen(152064, 3584, 18944, 28, 28, 4, False, theta=1e4, max_pos=4096),
    # Tiny models of the same architecture (tests, benchmarks, the CPU demo).
    "tiny": _qwen(512, 128, 256, 4, 4, 2, True, theta=1e4, max_pos=2048),
    "tiny-untied": _qwen(512, 128, 256, 4, 4, 2, False, theta=1e4, max_pos=2048),
    "nano": _qwen(128, 64, 128, 2, 4, 2, True, theta=1e4, max_pos=512),
}

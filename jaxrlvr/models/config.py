"""`ModelConfig`: the hyper-parameters of a decoder of the Qwen2 / Llama 3 / Qwen3 families, as a frozen
(hashable) dataclass.

The three families share one implementation; they differ only in a few named fields (docs/models.md):

=========  ==================  ===================================  ==========================================
family     ``attention_bias``  ``qk_norm``                          ``rope_scaling``
=========  ==================  ===================================  ==========================================
qwen2      True (q/k/v bias)   False                                None
llama      False               False                                ``RopeScaling`` (``llama3``) for Llama 3.1
qwen3      False               True (RMSNorm per head on q and k)   None
=========  ==================  ===================================  ==========================================

``model_type`` names the family (the Hugging Face ``model_type`` used to export); ``head_dim`` is explicit
(Qwen3: 128 whatever ``hidden_size / num_heads``); ``tie_word_embeddings`` varies within each family.

A config is a static argument of every jitted model function, so it holds only Python scalars, strings and
a frozen dataclass. Build one from a preset (``ModelConfig.preset("qwen3-1.7b")``), from a Hugging Face
``config.json`` (``ModelConfig.from_hf_config(dict)``), or directly. ``dataclasses.replace`` changes a
field, e.g. the compute dtype: ``dataclasses.replace(cfg, dtype="bfloat16")``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from jaxrlvr.models.attention import IMPLS as _ATTENTION_IMPLS

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
_REMAT = ("none", "full", "dots")
# Hugging Face model_type -> the architecture transformers loads it as.
ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM"}
SUPPORTED_ARCHITECTURES = tuple(ARCHITECTURES.values())


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """Llama 3.1's rotary frequency scaling (Hugging Face ``rope_type: "llama3"``).

    Frequencies whose wavelength exceeds ``original_max_position_embeddings / low_freq_factor`` are divided
    by ``factor``; those shorter than ``original_max_position_embeddings / high_freq_factor`` are kept; the
    band between is interpolated smoothly. Llama-3.1-8B: factor 8, low 1, high 4, original 8192.
    """

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int
    rope_type: str = "llama3"

    def __post_init__(self):
        if self.rope_type != "llama3":
            raise ValueError(f"RopeScaling.rope_type={self.rope_type!r}: only 'llama3' is implemented")
        if not (self.factor > 0 and self.low_freq_factor > 0 and self.high_freq_factor > self.low_freq_factor):
            raise ValueError(
                f"RopeScaling needs factor > 0 and high_freq_factor > low_freq_factor > 0, got factor={self.factor}, "
                f"low_freq_factor={self.low_freq_factor}, high_freq_factor={self.high_freq_factor}"
            )
        if self.original_max_position_embeddings <= 0:
            raise ValueError(
                f"RopeScaling.original_max_position_embeddings must be > 0, got {self.original_max_position_embeddings}"
            )

    def to_hf(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Decoder hyper-parameters (Qwen2, Llama 3, Qwen3: see the module docstring for what differs).

    Attributes:
      vocab_size: rows of the embedding matrix (the padded model vocabulary, not the tokenizer's size).
      hidden_size: model width D.
      intermediate_size: SwiGLU width I.
      num_layers: decoder layers L.
      num_heads: query heads H.
      num_kv_heads: key/value heads (grouped-query attention; H % num_kv_heads == 0).
      head_dim: per-head width (D // H for Qwen2.5 and Llama 3; 128 for every Qwen3 model).
      rope_theta: rotary base (1e6 for Qwen2.5 and Qwen3, 1e4 for Qwen2.5-Math, 5e5 for Llama 3).
      rms_norm_eps: RMSNorm epsilon.
      tie_word_embeddings: LM head shares the embedding matrix (Qwen2.5 0.5B-3B, Qwen3 0.6B-4B).
      attention_bias: q/k/v projections carry a bias (Qwen2; o-proj never does).
      max_position_embeddings: the context length; longer inputs are an error in the sampler.
      model_type: the family, as Hugging Face names it: "qwen2", "llama" or "qwen3" (decides the export).
      qk_norm: RMSNorm (learned scale over head_dim) on each query and key head before the rotary
        embedding (Qwen3).
      rope_scaling: :class:`RopeScaling` of the rotary frequencies (Llama 3.1) or None; a dict with the
        same keys is accepted (as read back from JSON).
      dtype: compute dtype of matmuls ("float32" | "bfloat16"); softmax, norms, logits stay float32.
      param_dtype: storage dtype of the parameters.
      remat: per-layer rematerialisation: "none", "full" (save nothing), "dots" (save matmul outputs).
      attention_impl: "auto" | "xla_blockwise" | "dense" | "cudnn" | "pallas_tpu" | "pallas_gpu"
        (``models.attention``; "auto": for bf16 on an accelerator cuDNN where it supports the mask, else the
        backend's Pallas kernel for training / scoring; blockwise otherwise; dense when the problem is one
        block).
      attention_block: query / key block of the blockwise attention (our choice: 512, few loop iterations on
        CPU and large enough matmuls on accelerators).
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
    model_type: str = "qwen2"
    qk_norm: bool = False
    rope_scaling: RopeScaling | None = None
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "none"
    attention_impl: str = "auto"
    attention_block: int = 512
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
            "attention_block",
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
        if self.attention_impl not in _ATTENTION_IMPLS:
            raise ValueError(f"ModelConfig.attention_impl={self.attention_impl!r} is not one of {_ATTENTION_IMPLS}")
        if not self.rope_theta > 0:
            raise ValueError(f"ModelConfig.rope_theta must be > 0, got {self.rope_theta!r}")
        if self.model_type not in ARCHITECTURES:
            raise ValueError(f"ModelConfig.model_type={self.model_type!r} is not one of {sorted(ARCHITECTURES)}")
        if isinstance(self.rope_scaling, dict):  # read back from model_config.json
            object.__setattr__(self, "rope_scaling", RopeScaling(**self.rope_scaling))
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, RopeScaling):
            raise ValueError(
                f"ModelConfig.rope_scaling must be a RopeScaling, a dict or None, got {self.rope_scaling!r}"
            )

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
        if self.qk_norm:
            attn += 2 * hd
        layer = attn + 3 * d * i + 2 * d
        embed = self.vocab_size * d
        head = 0 if self.tie_word_embeddings else self.vocab_size * d
        return embed + self.num_layers * layer + d + head

    # ----------------------------------------------------------------------------------------------
    @classmethod
    def from_hf_config(cls, hf: dict[str, Any], **overrides) -> ModelConfig:
        """Reads a Hugging Face ``config.json`` dict of model_type ``qwen2``, ``llama`` or ``qwen3``.

        ``rope_theta`` and the rotary scaling are read at the top level (``rope_theta``, ``rope_scaling``:
        transformers 4.x) or inside ``rope_parameters`` (transformers 5.x). Another architecture, a rope
        scaling other than ``llama3``, a feature we do not implement (sliding window, MLP or o-proj biases)
        or a missing field is an error naming it.
        """
        archs = hf.get("architectures") or []
        model_type = hf.get("model_type") or "qwen2"  # old Qwen2 exports omit it
        if model_type not in ARCHITECTURES or (archs and archs != [ARCHITECTURES[model_type]]):
            raise ValueError(
                f"unsupported architecture: model_type={hf.get('model_type')!r}, architectures={archs!r}; "
                f"jaxrlvr implements {', '.join(f'{a} (model_type {t!r})' for t, a in ARCHITECTURES.items())}"
            )
        if hf.get("hidden_act", "silu") != "silu":
            raise ValueError(f"unsupported hidden_act={hf['hidden_act']!r}; the {model_type} decoder uses 'silu'")
        if hf.get("use_sliding_window", False):
            raise ValueError("use_sliding_window=true is not supported (no Qwen2.5 / Qwen3 dense model uses it)")
        if hf.get("mlp_bias", False):
            raise ValueError("mlp_bias=true is not supported (no Llama 3 model uses it)")
        if model_type != "qwen2" and hf.get("attention_bias", False):
            raise ValueError(
                f"attention_bias=true is not supported for model_type {model_type!r} (it adds an o_proj bias; "
                "no Llama 3 or Qwen3 model uses it)"
            )
        rope = dict(hf.get("rope_parameters") or {})
        rope.update(hf.get("rope_scaling") or {})
        rope_type = rope.get("rope_type", rope.get("type")) or "default"
        scaling = None
        if rope_type == "llama3":
            try:
                scaling = RopeScaling(
                    factor=float(rope["factor"]),
                    low_freq_factor=float(rope["low_freq_factor"]),
                    high_freq_factor=float(rope["high_freq_factor"]),
                    original_max_position_embeddings=int(rope["original_max_position_embeddings"]),
                )
            except KeyError as e:
                raise ValueError(f"config.json's llama3 rope scaling has no {e.args[0]!r}") from None
        elif rope_type != "default":
            raise ValueError(
                f"unsupported rope type {rope_type!r}; implemented: the default rotary embedding and 'llama3'"
            )
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
                num_kv_heads=int(hf.get("num_key_value_heads") or h),
                head_dim=int(hf.get("head_dim") or d // h),
                rope_theta=float(theta),
                rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
                tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
                attention_bias=model_type == "qwen2",
                max_position_embeddings=int(hf.get("max_position_embeddings", 32768)),
                model_type=model_type,
                qk_norm=model_type == "qwen3",
                rope_scaling=scaling,
            )
        except KeyError as e:
            raise ValueError(f"config.json is missing the field {e.args[0]!r}") from None
        kw.update(overrides)
        return cls(**kw)

    def to_hf_config(self) -> dict[str, Any]:
        """A ``config.json`` dict that ``transformers`` loads as the family's ``*ForCausalLM``."""
        family = {"qwen2": (True, False), "llama": (False, False), "qwen3": (False, True)}
        bias, qk_norm = family[self.model_type]
        if (self.attention_bias, self.qk_norm) != (bias, qk_norm):
            raise ValueError(
                f"model_type={self.model_type!r} has attention_bias={bias} and qk_norm={qk_norm} in transformers; "
                f"this config has attention_bias={self.attention_bias}, qk_norm={self.qk_norm} and cannot be exported"
            )
        torch_dtype = self.param_dtype
        rope = {"rope_type": "default", "rope_theta": self.rope_theta}
        if self.rope_scaling is not None:
            rope = {**self.rope_scaling.to_hf(), "rope_theta": self.rope_theta}
        out = {
            "architectures": [ARCHITECTURES[self.model_type]],
            "model_type": self.model_type,
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
            "rope_parameters": rope,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": torch_dtype,
            "dtype": torch_dtype,
            "initializer_range": 0.02,
            "use_cache": True,
        }
        if self.model_type == "llama":
            out.update(attention_bias=False, mlp_bias=False, pretraining_tp=1)
        else:
            out.update(use_sliding_window=False, sliding_window=None, max_window_layers=self.num_layers)
        if self.model_type == "qwen3":
            out.update(attention_bias=False)
        return out

    @classmethod
    def preset(cls, name: str, **overrides) -> ModelConfig:
        """A named preset: the real hyper-parameters of a released model, or a tiny model for tests and demos."""
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


def _qwen3(d, i, layers, heads, kv, tied, vocab=151936, head_dim=128, max_pos=40960, theta=1e6):
    """Qwen3 dense (Qwen3 technical report, Table 1; the released config.json files): explicit head_dim
    128, q/k RMSNorm, no q/k/v bias."""
    return dict(
        _qwen(vocab, d, i, layers, heads, kv, tied, theta=theta, max_pos=max_pos),
        head_dim=head_dim,
        model_type="qwen3",
        qk_norm=True,
        attention_bias=False,
    )


def _llama(vocab, d, i, layers, heads, kv, tied, theta, max_pos, scaling):
    """Llama 3.x: no biases, ``llama3`` rotary scaling, RMSNorm epsilon 1e-5 (the released config.json)."""
    return dict(
        _qwen(vocab, d, i, layers, heads, kv, tied, theta=theta, max_pos=max_pos),
        model_type="llama",
        attention_bias=False,
        rms_norm_eps=1e-5,
        rope_scaling=scaling,
    )


_LLAMA31_ROPE = RopeScaling(
    factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192
)
_TINY_ROPE = RopeScaling(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=256)

PRESETS: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": _qwen(151936, 896, 4864, 24, 14, 2, True),
    "qwen2.5-1.5b": _qwen(151936, 1536, 8960, 28, 12, 2, True, max_pos=131072),
    "qwen2.5-3b": _qwen(151936, 2048, 11008, 36, 16, 2, True),
    "qwen2.5-7b": _qwen(152064, 3584, 18944, 28, 28, 4, False, max_pos=131072),
    "qwen2.5-math-1.5b": _qwen(151936, 1536, 8960, 28, 12, 2, True, theta=1e4, max_pos=4096),
    "qwen2.5-math-7b": _qwen(152064, 3584, 18944, 28, 28, 4, False, theta=1e4, max_pos=4096),
    # Qwen3 dense; the Base checkpoints share the architecture (their config.json may state a shorter
    # max_position_embeddings: load it with model.hf_path to use the file's values).
    "qwen3-0.6b": _qwen3(1024, 3072, 28, 16, 8, True),
    "qwen3-1.7b": _qwen3(2048, 6144, 28, 16, 8, True),
    "qwen3-4b": _qwen3(2560, 9728, 36, 32, 8, True),
    "qwen3-8b": _qwen3(4096, 12288, 36, 32, 8, False),
    # Llama 3.1 8B (base and Instruct share the architecture; the 128k vocabulary is untied).
    "llama-3.1-8b": _llama(128256, 4096, 14336, 32, 32, 8, False, 5e5, 131072, _LLAMA31_ROPE),
    "llama-3.1-8b-instruct": _llama(128256, 4096, 14336, 32, 32, 8, False, 5e5, 131072, _LLAMA31_ROPE),
    # Tiny models of each family (tests, benchmarks, the CPU demo and smoke runs).
    "tiny": _qwen(512, 128, 256, 4, 4, 2, True, theta=1e4, max_pos=2048),
    "tiny-untied": _qwen(512, 128, 256, 4, 4, 2, False, theta=1e4, max_pos=2048),
    "nano": _qwen(128, 64, 128, 2, 4, 2, True, theta=1e4, max_pos=512),
    "tiny-llama": _llama(512, 128, 256, 4, 4, 2, False, 1e4, 2048, _TINY_ROPE),
    "tiny-qwen3": _qwen3(128, 256, 4, 4, 2, True, vocab=512, head_dim=64, max_pos=2048, theta=1e4),
}

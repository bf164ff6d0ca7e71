"""Fixtures shared by the model tests."""

import jax.numpy as jnp
import numpy as np
import pytest

from tests.models.attention_cases import KV, B, H, N, T


@pytest.fixture(scope="module")
def qkv():
    """q [B, T, N, H], k and v [B, T, KV, H], and loss weights w shaped like q."""
    rng = np.random.default_rng(0)
    shapes = [(B, T, N, H), (B, T, KV, H), (B, T, KV, H), (B, T, N, H)]
    return [jnp.asarray(rng.normal(size=s), jnp.float32) for s in shapes]

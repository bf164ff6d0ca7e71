"""Activation sharding constraints that take effect only under a placement context.

The decoder constrains its activations at layer boundaries with logical axis names
(``constrain(x, ("batch", "length", "embed_act"))``). Outside a context this is the identity; inside
``activation_sharding(mesh, {"batch": ("data", "fsdp"), ...})`` (entered by ``jaxrlvr.sharding`` while it
traces a sharded function) it is ``jax.lax.with_sharding_constraint`` with the mapped ``PartitionSpec``.

Why not flax's ``nn.with_logical_constraint``: it needs flax's global logical-rules context *and* a global
mesh, and with both set flax also constrains every boxed parameter when it is read (``Partitioned.unbox``),
which fails for ``DenseGeneral`` kernels with multi-dimensional features (the flat kernel is constrained
with the names of the reshaped one).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Mapping, Sequence

import jax
from jax.sharding import NamedSharding, PartitionSpec

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("jaxrlvr_activation_sharding", default=None)


@contextlib.contextmanager
def activation_sharding(mesh: jax.sharding.Mesh, rules: Mapping[str, str | tuple[str, ...] | None]):
    """Within the block, :func:`constrain` maps logical names through ``rules`` onto ``mesh``."""
    token = _ACTIVE.set((mesh, dict(rules)))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active():
    """``(mesh, rules)`` of the enclosing :func:`activation_sharding`, or None outside one."""
    return _ACTIVE.get()


def constrain(x: jax.Array, names: Sequence[str]) -> jax.Array:
    """Sharding constraint of ``x`` by logical axis names (identity outside :func:`activation_sharding`).

    A name missing from the rules, or mapped to mesh axes that do not divide the dimension, leaves that
    dimension unconstrained-replicated (``None``)."""
    active = _ACTIVE.get()
    if active is None:
        return x
    mesh, rules = active
    spec = []
    for name, size in zip(names, x.shape, strict=True):
        axes = rules.get(name)
        axes_t = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
        n = 1
        for a in axes_t:
            n *= mesh.shape[a]
        spec.append(axes if axes_t and size % n == 0 else None)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(*spec)))

"""Meshes and logical-axis rules: the mesh from a config, the rule table, and the PartitionSpecs they give.

Mesh: axes ``('data', 'fsdp', 'tensor')`` (:data:`MESH_AXES`), built by :func:`make_mesh` from a shape
such as ``(1, 8, 1)`` where one entry may be ``-1`` ("the rest of the devices"). The axes are
``AxisType.Auto``: the partitioner propagates shardings from the jit boundaries and from the model's
sharding constraints (see docs/mesh.md for why not explicit mode).

Rules: an ordered table of ``(logical axis pattern, mesh axes)`` pairs (:data:`DEFAULT_RULES`, config
data under ``config.mesh.rules``). A parameter dimension with logical name ``n`` and size ``s`` takes the
first rule whose pattern matches ``n`` (``fnmatch``: ``"*"`` is the catch-all) and whose mesh axes are
unused by the parameter's other dimensions and divide ``s``; a matching rule that cannot be used (e.g.
2 K/V heads on a tensor axis of 4) passes to the next matching rule, so the default table replicates
such dimensions through its final catch-all. A dimension no rule matches, or a parameter without logical
names, is an error naming the parameter.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrlvr.models import ModelConfig, abstract_params, param_logical_axes

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")
ACTIVATION_AXES = ("batch", "length", "embed_act")

# Ordered (logical axis pattern, mesh axes) rules; the first usable match wins (see the module docstring).
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    # activations (the decoder layer constrains its input to ("batch", "length", "embed_act"))
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed_act", None),
    # parameters
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),  # 2 K/V heads on tensor=4: not divisible -> falls through to the catch-all
    ("mlp", "tensor"),
    ("*", None),  # catch-all: layers, head_dim, norm (and anything else) replicated
)


class MeshError(ValueError):
    """An impossible mesh shape, a bad rule table, or an array that cannot be laid out on the mesh."""


# ------------------------------------------------------------------------------------------------ meshes
def check_mesh_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Validates a mesh shape without looking at devices: 3 ints, positive or one ``-1``."""
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise MeshError(f"mesh.shape={shape!r} must be {len(MESH_AXES)} ints (data, fsdp, tensor)") from None
    if len(shape) != len(MESH_AXES):
        raise MeshError(f"mesh.shape={shape} must have {len(MESH_AXES)} entries, one per axis {MESH_AXES}")
    if any(s == 0 or s < -1 for s in shape):
        raise MeshError(f"mesh.shape={shape}: entries must be positive or -1 ('the rest')")
    if shape.count(-1) > 1:
        raise MeshError(f"mesh.shape={shape}: at most one entry may be -1")
    return shape


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """``shape`` with its ``-1`` entry (at most one) replaced so that the product is ``num_devices``."""
    shape = check_mesh_shape(shape)
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise MeshError(
                f"mesh.shape={shape}: {num_devices} devices cannot be split into {known} x the rest "
                f"({num_devices} is not a multiple of {known})"
            )
        shape = tuple(num_devices // known if s == -1 else s for s in shape)
    if math.prod(shape) != num_devices:
        raise MeshError(
            f"mesh.shape={shape} needs {math.prod(shape)} devices but {num_devices} are used "
            f"(set mesh.devices to use fewer than all {len(jax.devices())} devices)"
        )
    return shape


def select_devices(num_devices: int = -1) -> list:
    """All devices, or the first ``num_devices`` (``mesh.devices``)."""
    devices = jax.devices()
    if num_devices not in (-1, 0):
        if not 0 < num_devices <= len(devices):
            raise MeshError(f"mesh.devices={num_devices}: only {len(devices)} devices exist")
        if num_devices < len(devices) and jax.process_count() > 1:
            raise MeshError("mesh.devices must be -1 (all devices) in a multi-process run")
        devices = devices[:num_devices]
    return list(devices)


def make_mesh(shape: Sequence[int] = (-1, 1, 1), *, num_devices: int = -1, devices=None) -> Mesh:
    """A ``('data', 'fsdp', 'tensor')`` mesh with Auto axes over ``devices`` (default: all, or the first
    ``num_devices``); one ``shape`` entry may be ``-1``. An impossible shape is a :class:`MeshError`."""
    devices = select_devices(num_devices) if devices is None else list(devices)
    shape = resolve_mesh_shape(shape, len(devices))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)


def split_rollout_devices(devices: Sequence, rollout_devices: float) -> tuple[list, list]:
    """(training devices, sampling devices) of ``mesh.rollout_devices``: 0 -> all train and sample
    (colocated); an integer n >= 1 -> the last n devices sample; a fraction in (0, 1) -> that share of them
    (rounded, at least 1). Both parts must be non-empty."""
    devices, r = list(devices), float(rollout_devices)
    if r == 0:
        return devices, []
    if r < 0 or (r >= 1 and r != int(r)):
        raise MeshError(
            f"mesh.rollout_devices={rollout_devices}: give 0 (colocated), a device count >= 1 or a fraction in (0, 1)"
        )
    n = int(r) if r >= 1 else max(1, round(r * len(devices)))
    if not n < len(devices):
        raise MeshError(
            f"mesh.rollout_devices={rollout_devices} leaves no device to train on ({len(devices)} devices in use): "
            f"give fewer than {len(devices)}"
        )
    return devices[: len(devices) - n], devices[len(devices) - n :]


def _config_devices(c) -> tuple[list, list]:
    """(training devices, sampling devices) of a run config: ``c.mesh.devices`` split by
    ``c.mesh.rollout_devices`` (:func:`split_rollout_devices`)."""
    return split_rollout_devices(select_devices(int(c.mesh.get("devices", -1))), c.mesh.get("rollout_devices", 0))


def mesh_from_config(c) -> Mesh:
    """The training mesh of a run config (``c.mesh.shape`` over ``c.mesh.devices``, less the sampling devices
    of ``c.mesh.rollout_devices``)."""
    return make_mesh(tuple(c.mesh.shape), devices=_config_devices(c)[0])


def rollout_mesh_from_config(c) -> Mesh | None:
    """The sampling mesh (``c.mesh.rollout_shape`` over the devices ``c.mesh.rollout_devices`` sets apart),
    or None when sampling is colocated with training."""
    roll = _config_devices(c)[1]
    return make_mesh(tuple(c.mesh.get("rollout_shape", (-1, 1, 1))), devices=roll) if roll else None


def single_device_mesh(device=None) -> Mesh:
    return make_mesh((1, 1, 1), devices=[device or jax.devices()[0]])


# ------------------------------------------------------------------------------------------------- rules
def _axes_tuple(axes) -> tuple[str, ...]:
    if axes is None:
        return ()
    if isinstance(axes, str):
        return (axes,)
    return tuple(axes)


def validate_rules(rules) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Normalises a rule table to ``((pattern, (mesh axes...)), ...)``; unknown mesh axes, a malformed
    entry or an entry after the catch-all are errors."""
    out = []
    seen_catch_all = False
    for i, rule in enumerate(rules):
        if not isinstance(rule, Sequence) or isinstance(rule, str) or len(rule) != 2:
            raise MeshError(f"mesh.rules[{i}]={rule!r} must be a (logical axis pattern, mesh axes) pair")
        pattern, axes = rule
        if not isinstance(pattern, str) or not pattern:
            raise MeshError(f"mesh.rules[{i}]: the pattern must be a non-empty string, got {pattern!r}")
        axes = _axes_tuple(axes)
        bad = [a for a in axes if a not in MESH_AXES]
        if bad or len(set(axes)) != len(axes):
            raise MeshError(f"mesh.rules[{i}]={rule!r}: mesh axes must be distinct names from {MESH_AXES}")
        if seen_catch_all:
            raise MeshError(f"mesh.rules[{i}]={rule!r} comes after the catch-all '*' and can never match")
        seen_catch_all = pattern == "*"
        out.append((pattern, axes))
    return tuple(out)


def rules_from_config(c) -> tuple[tuple[str, tuple[str, ...]], ...]:
    rules = c.mesh.get("rules", None)
    return validate_rules(DEFAULT_RULES if rules is None else rules)


def _axis_size(mesh: Mesh, axes: tuple[str, ...]) -> int:
    return math.prod(mesh.shape[a] for a in axes)


def logical_to_spec(names: Sequence[str], shape: Sequence[int], mesh: Mesh, rules, *, what: str = "array") -> P:
    """PartitionSpec of an array whose dimensions carry logical ``names`` (see the module docstring)."""
    rules = validate_rules(rules)
    if len(names) != len(shape):
        raise MeshError(f"{what}: {len(names)} logical axis names {tuple(names)} for a rank-{len(shape)} array")
    used: set[str] = set()
    spec = []
    for name, size in zip(names, shape, strict=True):
        if name is None:
            raise MeshError(f"{what}: dimension of size {size} has no logical axis name ({tuple(names)})")
        matched, chosen = False, ()
        for pattern, axes in rules:
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            matched = True
            if used & set(axes) or size % _axis_size(mesh, axes):
                continue  # not usable here: the next matching rule decides
            chosen = axes
            break
        if not matched:
            raise MeshError(
                f"{what}: no sharding rule names the logical axis {name!r} (axes {tuple(names)}); add a rule "
                "for it to mesh.rules (the default table ends in the catch-all ('*', None))"
            )
        used |= set(chosen)
        spec.append(None if not chosen else chosen[0] if len(chosen) == 1 else chosen)
    return P(*spec)


def _path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def param_specs(model_cfg: ModelConfig, mesh: Mesh, rules=DEFAULT_RULES) -> dict:
    """PartitionSpec tree of the model's parameters (a parameter without logical names is an error)."""
    shapes = abstract_params(model_cfg)
    names = param_logical_axes(model_cfg)
    names_by_path = dict(jax.tree_util.tree_flatten_with_path(names, is_leaf=lambda x: isinstance(x, tuple))[0])

    def one(path, leaf):
        where = f"parameter {_path_str(path)}"
        if path not in names_by_path or not names_by_path[path] and leaf.ndim:
            raise MeshError(f"{where} {leaf.shape} carries no logical axis names (models must annotate it)")
        return logical_to_spec(names_by_path[path], leaf.shape, mesh, rules, what=where)

    return jax.tree_util.tree_map_with_path(one, shapes)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows (dimension 0) over ``('data', 'fsdp')``; the other dimensions replicated."""
    return NamedSharding(mesh, P(BATCH_AXES))


def batch_divisor(mesh: Mesh) -> int:
    return _axis_size(mesh, BATCH_AXES)


def activation_rules(mesh: Mesh, rules) -> tuple[tuple[str, Any], ...]:
    """``(name, mesh axes)`` for the activation names of the decoder's layer-boundary constraints."""
    out = []
    for name in ACTIVATION_AXES:
        for pattern, axes in validate_rules(rules):
            if fnmatch.fnmatchcase(name, pattern):
                out.append((name, None if not axes else axes[0] if len(axes) == 1 else axes))
                break
        else:
            raise MeshError(f"no sharding rule names the activation axis {name!r}; add one to mesh.rules")
    return tuple(out)

"""Meshes and placements: mesh from config, logical-axis rules -> shardings, sharded train / score / sample.

Everything distributed goes through JAX's SPMD partitioner: this module only *names* where arrays live
(``NamedSharding`` on a 3-axis mesh) and jits the trainer's and sampler's pure functions with those
shardings; XLA inserts every collective. See docs/mesh.md.

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

Placements: :class:`Placement` (one per mesh, rules and model) gives the shardings of params, optimizer
state (follows the params), train state and batches (rows over ``('data', 'fsdp')``), and the jitted,
sharded ``train_step`` / ``score_tokens`` (explicit in/out shardings, donated state) and ``generate``
(weights replicated over ``data`` and ``fsdp``, KV cache sharded over rows and K/V heads).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrlvr.models import ModelConfig, abstract_params, param_logical_axes
from jaxrlvr.models.partitioning import activation_sharding

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


def make_mesh(shape: Sequence[int] = (-1, 1, 1), *, num_devices: int = -1, devices=None) -> Mesh:
    """A ``('data', 'fsdp', 'tensor')`` mesh with Auto axes over ``devices`` (default: all, or the first
    ``num_devices``); one ``shape`` entry may be ``-1``. An impossible shape is a :class:`MeshError`."""
    if devices is None:
        devices = jax.devices()
        if num_devices not in (-1, 0):
            if not 0 < num_devices <= len(devices):
                raise MeshError(f"mesh.devices={num_devices}: only {len(devices)} devices exist")
            if num_devices < len(devices) and jax.process_count() > 1:
                raise MeshError("mesh.devices must be -1 (all devices) in a multi-process run")
            devices = devices[:num_devices]
    devices = list(devices)
    shape = resolve_mesh_shape(shape, len(devices))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)


def mesh_from_config(c) -> Mesh:
    """The mesh of a run config (``c.mesh.shape``, ``c.mesh.devices``)."""
    return make_mesh(tuple(c.mesh.shape), num_devices=int(c.mesh.get("devices", -1)))


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


# ----------------------------------------------------------------------------------------- host -> mesh
def put(tree, shardings):
    """Places host values (numpy or single-device arrays, identical on every process) with ``shardings``
    (a tree, or one sharding for every leaf). Multi-process safe: each process copies only its shards."""
    if isinstance(shardings, jax.sharding.Sharding):
        shardings = jax.tree.map(lambda _: shardings, tree)
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)

    def one(x, s):
        if isinstance(x, jax.Array) and x.sharding == s:
            return x
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.jit(lambda a: a, out_shardings=s)(x)
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(one(jax.random.key_data(x), s), impl=jax.random.key_impl(x))
        arr = np.asarray(x)
        return jax.make_array_from_callback(arr.shape, s, lambda idx: arr[idx])

    return jax.tree.map(one, tree, shardings)


def conform(tree, shardings):
    """``tree`` with every leaf on its target sharding: device arrays elsewhere are resharded on device
    (``device_put``), host values placed with :func:`put`; leaves already there are returned as they are.
    jit does not move committed arguments itself (it raises on a mismatch)."""
    if isinstance(shardings, jax.sharding.Sharding):
        shardings = jax.tree.map(lambda _: shardings, tree)

    def one(x, s):
        if isinstance(x, jax.Array):
            if x.sharding == s or x.sharding.is_equivalent_to(s, x.ndim):
                return x
            if x.is_fully_addressable and not s.is_fully_addressable:
                return put(x, s)  # a process-local value (the same on every process) onto the global mesh
            if not x.is_fully_addressable:
                return jax.jit(lambda a: a, out_shardings=s)(x)
            return jax.device_put(x, s)
        return put(x, s)

    return jax.tree.map(one, tree, shardings)


def put_batch(mesh: Mesh, batch):
    """A host batch (every leaf [B, ...], the same on every process) with rows over ``('data', 'fsdp')``."""
    n = batch_divisor(mesh)
    for path, x in jax.tree_util.tree_flatten_with_path(batch)[0]:
        if np.ndim(x) == 0 or np.shape(x)[0] % n:
            raise MeshError(
                f"batch entry {_path_str(path)} with shape {np.shape(x)}: rows must be a multiple of "
                f"data x fsdp = {n} (mesh {dict(mesh.shape)})"
            )
    return put(batch, batch_sharding(mesh))


def put_process_batch(mesh: Mesh, local_batch):
    """The global batch from each process's own rows (every leaf [B_local, ...]): process ``i`` of ``n``
    supplies the rows its devices hold. Global rows = the processes' rows in device order."""
    s = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(s, np.asarray(x)), local_batch)


def to_host(tree):
    """numpy copies of (replicated or fully addressable) arrays; in a multi-process run a sharded array is
    gathered to every process first."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        tree = jax.tree.map(
            lambda x: (
                x
                if not isinstance(x, jax.Array) or x.is_fully_replicated or x.is_fully_addressable
                else multihost_utils.process_allgather(x, tiled=True)
            ),
            tree,
        )
    return jax.tree.map(np.asarray, tree)


def is_main_process() -> bool:
    """Process 0 writes the run's files (metrics, config, summary, plots, dumps); every process computes."""
    return jax.process_index() == 0


def process_allgather_json(obj) -> list:
    """``[obj of process 0, obj of process 1, ...]`` on every process (a small JSON-serialisable value per
    process: prompt rows, counts). One process: ``[obj]``. Uses JAX's collectives, no extra channel."""
    if jax.process_count() == 1:
        return [obj]
    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(obj).encode("utf-8"), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.int32(data.size))).reshape(-1)
    buf = np.zeros((int(sizes.max()),), np.int32)
    buf[: data.size] = data
    gathered = np.asarray(multihost_utils.process_allgather(buf)).reshape(len(sizes), -1)
    return [json.loads(gathered[i, : sizes[i]].astype(np.uint8).tobytes()) for i in range(len(sizes))]


def process_slice(n: int) -> slice:
    """This process's contiguous share of ``n`` items (host-side work such as verification): process ``i``
    of ``p`` gets items ``[i * ceil(n/p), (i+1) * ceil(n/p))`` (the last ones may get fewer or none)."""
    p, i = jax.process_count(), jax.process_index()
    per = -(-n // p)
    return slice(min(n, i * per), min(n, (i + 1) * per))


def process_allgather_rows(local: np.ndarray, n: int) -> np.ndarray:
    """The inverse of :func:`process_slice`: every process's share of ``n`` rows -> all ``n`` rows."""
    if jax.process_count() == 1:
        return np.asarray(local)
    from jax.experimental import multihost_utils

    local = np.asarray(local)
    per = -(-n // jax.process_count())
    buf = np.zeros((per,) + local.shape[1:], local.dtype)
    buf[: local.shape[0]] = local
    return np.asarray(multihost_utils.process_allgather(buf, tiled=True))[:n]


# ---------------------------------------------------------------------------------------------- placement
@dataclasses.dataclass(frozen=True, eq=False)
class Placement:
    """Shardings and sharded jitted functions for one (mesh, rule table, model).

    Get one with :func:`placement` (cached, so equal arguments share compiled functions).
    """

    mesh: Mesh
    rules: tuple
    model_cfg: ModelConfig

    def __post_init__(self):
        object.__setattr__(self, "_cache", {})

    # ---- shardings ----
    @functools.cached_property
    def param_specs(self) -> dict:
        return param_specs(self.model_cfg, self.mesh, self.rules)

    @functools.cached_property
    def param_shardings(self) -> dict:
        return jax.tree.map(lambda s: NamedSharding(self.mesh, s), self.param_specs)

    @property
    def replicated(self) -> NamedSharding:
        return replicated(self.mesh)

    @property
    def batch(self) -> NamedSharding:
        return batch_sharding(self.mesh)

    def opt_state_shardings(self, tx, opt_state):
        """Optimizer state follows the params (moments like params; counters replicated)."""
        import optax

        return optax.tree_map_params(
            tx,
            lambda _, s: s,
            opt_state,
            self.param_shardings,
            transform_non_params=lambda _: self.replicated,
        )

    def state_shardings(self, state, tx):
        """Shardings of a ``TrainState`` (or its abstract version): params, optimizer state, reference
        params as above; step and knobs replicated."""
        rep = self.replicated
        return state.replace(
            step=rep,
            params=self.param_shardings,
            opt_state=self.opt_state_shardings(tx, state.opt_state),
            knobs=jax.tree.map(lambda _: rep, state.knobs),
            ref_params=None if state.ref_params is None else self.param_shardings,
        )

    def abstract_state(self, state, tx):
        """``ShapeDtypeStruct`` tree of a state with this placement's shardings: the target of an orbax
        restore onto this mesh (whatever mesh the checkpoint was written on)."""
        shapes = jax.eval_shape(lambda s: s, state)
        return jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), shapes, self.state_shardings(state, tx)
        )

    def put_params(self, params):
        return put(params, self.param_shardings)

    def put_state(self, state, tx):
        return put(state, self.state_shardings(state, tx))

    def put_batch(self, batch):
        return put_batch(self.mesh, batch)

    def init_params(self, rng):
        """Random params created directly in place (nothing materialises unsharded)."""
        from jaxrlvr.models import init_params

        key = ("init_params",)
        if key not in self._cache:
            self._cache[key] = jax.jit(
                functools.partial(init_params, self.model_cfg), out_shardings=self.param_shardings
            )
        return self._cache[key](rng)

    def context(self):
        """The activation rules in effect while tracing (the decoder's layer-boundary constraints)."""
        return activation_sharding(self.mesh, dict(activation_rules(self.mesh, self.rules)))

    def check_rows(self, rows: int, what: str):
        n = batch_divisor(self.mesh)
        if rows % n:
            raise MeshError(
                f"{what}={rows} is not a multiple of data x fsdp = {n} (mesh {dict(self.mesh.shape)}): every "
                "device needs the same number of rows"
            )

    # ---- the trainer's pure functions, jitted with explicit shardings ----
    def train_step(self, state, batch, rng, **static):
        """``train.step.train_step_fn`` on this mesh: in/out shardings explicit, ``state`` donated."""
        from jaxrlvr.train.step import TRAIN_STEP_STATIC

        if set(static) != set(TRAIN_STEP_STATIC):
            raise TypeError(f"train_step needs exactly the static arguments {TRAIN_STEP_STATIC}, got {sorted(static)}")
        self.check_rows(static["micro_batch"], "train.micro_batch_size")
        fn, state_sh = self._train_step_jit(state, batch, static)
        state = conform(state, state_sh)
        batch = conform(batch, self.batch)
        with self.context():
            return fn(state, batch, conform(rng, self.replicated))

    def lower_train_step(self, state, batch, rng, **static):
        """``jit(...).lower`` of the sharded train step on abstract arguments (memory planning)."""
        fn, _ = self._train_step_jit(state, batch, static)
        with self.context():
            return fn.lower(state, batch, rng)

    def _train_step_jit(self, state, batch, static):
        """(the jitted ``train_step_fn`` with explicit shardings and donated state, the state's shardings),
        cached per state / batch structure and static arguments."""
        from jaxrlvr.train.step import train_step_fn

        key = ("train_step", jax.tree.structure(state), jax.tree.structure(batch), tuple(sorted(static.items())))
        hit = self._cache.get(key)
        if hit is None:
            state_sh = self.state_shardings(state, static["tx"])
            fn = jax.jit(
                functools.partial(train_step_fn, **static),
                in_shardings=(state_sh, self.batch, self.replicated),
                out_shardings=(state_sh, self.replicated),
                donate_argnums=0,
            )
            hit = self._cache[key] = (fn, state_sh)
        return hit

    def score_tokens(self, model_cfg, params, input_ids_BS, attention_mask_BS, **static):
        """``train.step.score_tokens_fn`` on this mesh (same signature as ``train.step.score_tokens``):
        (log-probs, entropies) [B, R] with rows sharded over ``('data', 'fsdp')``."""
        from jaxrlvr.train.step import SCORE_STATIC, score_tokens_fn

        if set(static) | {"model_cfg"} != set(SCORE_STATIC):
            raise TypeError(f"score_tokens needs the static arguments {SCORE_STATIC}, got {sorted(static)}")
        self.check_rows(static["micro_batch"], "train.micro_batch_size")
        key = ("score", model_cfg, tuple(sorted(static.items())))
        fn = self._cache.get(key)
        if fn is None:
            shardings = self.param_shardings if model_cfg == self.model_cfg else None
            fn = jax.jit(
                lambda p, i, m: score_tokens_fn(model_cfg, p, i, m, **static),
                in_shardings=(shardings, self.batch, self.batch),
                out_shardings=(self.batch, self.batch),
            )
            self._cache[key] = fn
        if model_cfg == self.model_cfg:
            params = conform(params, self.param_shardings)
        input_ids_BS, attention_mask_BS = conform((input_ids_BS, attention_mask_BS), self.batch)
        with self.context():
            return fn(params, input_ids_BS, attention_mask_BS)

    def shape_advantages(self, algo_cfg, rewards_B, logp_BT, mask_BT, knobs):
        """``algos.shape_advantages`` on this mesh: rows over ``('data', 'fsdp')``, knobs replicated."""
        from jaxrlvr import algos

        key = ("shape", algo_cfg)
        fn = self._cache.get(key)
        if fn is None:
            fn = jax.jit(
                functools.partial(algos.shape_advantages, algo_cfg),
                in_shardings=(self.batch, self.batch, self.batch, self.replicated),
            )
            self._cache[key] = fn
        rewards_B, logp_BT, mask_BT = conform((rewards_B, logp_BT, mask_BT), self.batch)
        return fn(rewards_B, logp_BT, mask_BT, conform(knobs, self.replicated))

    # ---- sampling ----
    def sampler_params(self, params):
        """Training params -> the sampler's layout, placed for decoding (replicated over data and fsdp)."""
        from jaxrlvr.sampling import InferenceParams, inference

        if isinstance(params, InferenceParams):
            if params.layout != "auto":
                raise MeshError(
                    f"sampler params prepared with layout={params.layout!r} (the single-device CPU kernels' layout); "
                    "a placement takes the model params, or sampling.prepare_params(config, params, layout='auto')"
                )
            return conform(params, sampler_param_shardings(self.mesh, self.model_cfg, params))
        key = ("prepare",)
        fn = self._cache.get(key)
        if fn is None:
            out_sh = sampler_param_shardings(self.mesh, self.model_cfg)
            fn = jax.jit(
                functools.partial(inference.prepare_params, self.model_cfg),
                in_shardings=(self.param_shardings,),
                out_shardings=out_sh,
            )
            self._cache[key] = fn
        with self.context():
            return fn(conform(params, self.param_shardings))

    def generate(self, config: ModelConfig, params, prompts, **kwargs):
        """``sampling.generate`` on this mesh (same arguments and result); see :func:`generate`."""
        return generate(self, config, params, prompts, **kwargs)


@functools.lru_cache(maxsize=32)
def _placement(mesh: Mesh, rules: tuple, model_cfg: ModelConfig) -> Placement:
    return Placement(mesh, rules, model_cfg)


def placement(mesh: Mesh, model_cfg: ModelConfig, rules=DEFAULT_RULES) -> Placement:
    """The (cached) :class:`Placement` of a model on a mesh under a rule table (a mesh with Auto axes,
    as :func:`make_mesh` builds; explicit-sharding axes are an error, see docs/mesh.md)."""
    types = getattr(mesh, "axis_types", None) or ()
    if tuple(mesh.axis_names) != MESH_AXES or any(t != AxisType.Auto for t in types):
        raise MeshError(
            f"placements need a mesh with Auto axes {MESH_AXES} (sharding.make_mesh), got axes "
            f"{tuple(mesh.axis_names)} of types {tuple(types)}"
        )
    return _placement(mesh, validate_rules(rules), model_cfg)


# ---------------------------------------------------------------------------------------------- sampler
def _tensor_dim(shape, nt: int) -> int | None:
    """The dimension of a 2-D weight split over a tensor axis of size ``nt``: the larger divisible one."""
    if nt == 1 or len(shape) != 2:
        return None
    for d in sorted(range(2), key=lambda d: -shape[d]):
        if shape[d] % nt == 0:
            return d
    return None


def sampler_param_shardings(mesh: Mesh, model_cfg: ModelConfig, ip=None):
    """Shardings of the sampler's ``InferenceParams``: every weight replicated over ``data`` and ``fsdp``
    (decoding reads all weights every step; gathering FSDP shards per token would dominate). With a
    ``tensor`` axis > 1 each 2-D weight is split over it along its larger divisible dimension (the
    vocabulary of embedding / LM head, the wide side of each kernel); vectors stay replicated."""
    if ip is None:
        from jaxrlvr.sampling import inference

        ip = jax.eval_shape(functools.partial(inference.prepare_params, model_cfg), abstract_params(model_cfg))
    nt = mesh.shape["tensor"]

    def one(x):
        d = _tensor_dim(x.shape, nt)
        spec = [None] * len(x.shape)
        if d is not None:
            spec[d] = "tensor"
        return NamedSharding(mesh, P(*spec))

    return jax.tree.map(one, ip)


def _rows_spec(mesh: Mesh, rows: int):
    return BATCH_AXES if rows % batch_divisor(mesh) == 0 else None


def cache_shardings(mesh: Mesh, model_cfg: ModelConfig, cache):
    """The sampler's KV cache (leaves ``[B, KV, ...]``): rows over ``('data', 'fsdp')`` and K/V heads over
    ``tensor`` when the head count divides (Qwen2.5 0.5B-3B have 2 K/V heads: replicated on tensor > 2)."""
    nt = mesh.shape["tensor"]

    def one(x):
        b, kv = x.shape[0], x.shape[1]
        if kv != model_cfg.num_kv_heads:
            raise MeshError(f"cache leaf {x.shape}: expected [B, KV={model_cfg.num_kv_heads}, ...]")
        heads = "tensor" if nt > 1 and kv % nt == 0 else None
        return NamedSharding(mesh, P(_rows_spec(mesh, b), heads))

    return jax.tree.map(one, cache)


def _rows_shardings(mesh: Mesh, tree, rows: int):
    """Leaves with ``rows`` leading rows sharded over the batch axes (when divisible), others replicated."""

    def one(x):
        if len(x.shape) >= 1 and x.shape[0] == rows:
            return NamedSharding(mesh, P(_rows_spec(mesh, rows)))
        return replicated(mesh)

    return jax.tree.map(one, tree)


def _sampler_jits(pl: Placement, sampler, p: int, t: int, e: int):
    from jaxrlvr.sampling import sampler as sampler_mod
    from jaxrlvr.sampling.prng import seed_key

    key = ("sampler", sampler, p, t, e)
    hit = pl._cache.get(key)
    if hit is not None:
        return hit
    mesh = pl.mesh
    ip_abs = jax.eval_shape(
        functools.partial(sampler_mod.inference.prepare_params, sampler.config), abstract_params(sampler.config)
    )
    ip_sh = sampler_param_shardings(mesh, sampler.config, ip_abs)
    ids = jax.ShapeDtypeStruct((p, t), jnp.int32)
    lens = jax.ShapeDtypeStruct((p,), jnp.int32)
    eos = jax.ShapeDtypeStruct((e,), jnp.int32)
    rng = jax.eval_shape(lambda: seed_key(0))
    cache_abs, state_abs = jax.eval_shape(
        lambda *a: sampler_mod.Sampler.prefill_impl(sampler, *a), ip_abs, ids, lens, rng, eos
    )
    b = p * sampler.num_samples
    cache_sh = cache_shardings(mesh, sampler.config, cache_abs)
    state_sh = _rows_shardings(mesh, state_abs, b)
    in_rows = NamedSharding(mesh, P(_rows_spec(mesh, p)))
    rep = replicated(mesh)
    platform = mesh.devices.flat[0].platform
    opts = None
    if hasattr(sampler_mod, "compiler_options") and not getattr(sampler_mod, "_OPTIONS_REJECTED", False):
        opts = sampler_mod.compiler_options(sampler.config, platform)  # the sampler's own XLA options
    prefill = jax.jit(
        functools.partial(sampler_mod.Sampler.prefill_impl, sampler),
        in_shardings=(ip_sh, in_rows, in_rows, rep, rep),
        out_shardings=(cache_sh, state_sh),
        compiler_options=opts,
    )
    decode = jax.jit(
        functools.partial(sampler_mod.Sampler.decode_impl, sampler),
        in_shardings=(ip_sh, cache_sh, state_sh),
        out_shardings=(rep, cache_sh),  # outputs gathered: every process can read every row
        donate_argnums=1,
        compiler_options=opts,
    )
    pl._cache[key] = (prefill, decode)
    return prefill, decode


def generate(
    pl: Placement,
    config: ModelConfig,
    params,
    prompts,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
    num_samples: int = 1,
    eos_ids=(),
    pad_id: int,
    seed: int,
    **sampler_kwargs,
):
    """:func:`jaxrlvr.sampling.generate` with the placement's mesh: the same arguments and outputs (the
    rows are bit-for-bit the single-device ones up to floating-point reduction order).

    Weights are converted to the sampler's layout on the mesh (:meth:`Placement.sampler_params`);
    prompts, the loop state and the KV cache are sharded over rows (and the cache over K/V heads); the
    decode loop runs on the devices with the cache donated; the outputs come back replicated."""
    from jaxrlvr.sampling import InferenceParams
    from jaxrlvr.sampling import sampler as sampler_mod

    if config != pl.model_cfg:
        pl = placement(pl.mesh, config, pl.rules)
    call = dict(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        greedy=greedy,
        num_samples=num_samples,
        eos_ids=eos_ids,
        pad_id=pad_id,
        seed=seed,
        **sampler_kwargs,  # e.g. attn_block (default: the sampler's)
    )
    if (
        pl.mesh.size == 1
        and pl.mesh.devices.flat[0] == jax.devices()[0]
        and not isinstance(params, InferenceParams)
        and sampler_mod.cpu_kernels_usable(config)
    ):  # one CPU device: the single-device sampler with the CPU decode kernel (docs/sampler.md)
        from jaxrlvr.sampling import generate as generate_one

        return generate_one(config, params, prompts, **call)
    sampler, ids, lengths, key, eos_arr = sampler_mod.setup_call(config, prompts, **call)
    prefill, decode = _sampler_jits(pl, sampler, ids.shape[0], ids.shape[1], eos_arr.shape[0])
    ip = pl.sampler_params(params)
    rows_sh = NamedSharding(pl.mesh, P(_rows_spec(pl.mesh, ids.shape[0])))
    ids, lengths = put((ids, lengths), rows_sh)
    key, eos_arr = put((key, eos_arr), pl.replicated)
    with pl.context():
        cache, state = prefill(ip, ids, lengths, key, eos_arr)
        out, cache = decode(ip, cache, state)
    del cache
    return sampler_mod.real_rows(out, len(prompts) * sampler.num_samples)


# ---------------------------------------------------------------------------------------------- multi-host
def initialize_distributed(c=None, *, log=print) -> bool:
    """``jax.distributed.initialize`` from ``c.mesh.distributed`` or the environment; returns whether a
    multi-process runtime is (now) active.

    Settings, first found wins: the config fields ``coordinator_address``, ``num_processes``,
    ``process_id``; the variables ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``;
    JAX's own cluster detection (SLURM, Open MPI, Kubernetes, Cloud TPU) when ``c.mesh.distributed.auto``.
    Nothing is done when none is set (a single-process run). CPU processes use gloo collectives.
    """
    d = c.mesh.distributed if c is not None else None
    get = (lambda k, default: d.get(k, default)) if d is not None else (lambda k, default: default)
    addr = get("coordinator_address", "") or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    num = int(get("num_processes", 0) or os.environ.get("JAX_NUM_PROCESSES", 0) or 0)
    pid_cfg = get("process_id", -1)
    pid = int(pid_cfg if pid_cfg is not None and pid_cfg >= 0 else os.environ.get("JAX_PROCESS_ID", -1))
    auto = bool(get("auto", False))
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    if not addr and not auto:
        if num > 1 or pid >= 0:
            raise MeshError("mesh.distributed: num_processes / process_id are set but no coordinator_address")
        return False
    kwargs = {}
    if addr:
        if num < 1 or pid < 0:
            raise MeshError(
                f"mesh.distributed: coordinator_address={addr!r} needs num_processes >= 1 and process_id >= 0 "
                f"(got {num}, {pid}); set them in the config or JAX_NUM_PROCESSES / JAX_PROCESS_ID"
            )
        if not 0 <= pid < num:
            raise MeshError(f"mesh.distributed: process_id={pid} is not in [0, num_processes={num})")
        kwargs = dict(coordinator_address=addr, num_processes=num, process_id=pid)
    timeout = int(get("timeout_s", 300))
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs, initialization_timeout=timeout)
    log(
        f"jax.distributed: process {jax.process_index()} of {jax.process_count()}, "
        f"{jax.local_device_count()} local / {jax.device_count()} global devices"
    )
    return jax.process_count() > 1


# ---------------------------------------------------------------------------------------------- reports
def describe(pl: Placement) -> list[dict]:
    """One row per parameter: path, shape, logical axes, PartitionSpec, bytes per device."""
    shapes = abstract_params(pl.model_cfg)
    names = param_logical_axes(pl.model_cfg)
    rows = []
    flat_n = dict(jax.tree_util.tree_flatten_with_path(names, is_leaf=lambda x: isinstance(x, tuple))[0])
    for (path, x), spec in zip(
        jax.tree_util.tree_flatten_with_path(shapes)[0],
        jax.tree.leaves(pl.param_specs, is_leaf=_is_spec),
        strict=True,
    ):
        shard = NamedSharding(pl.mesh, spec).shard_shape(x.shape)
        rows.append(
            dict(
                path=_path_str(path),
                shape=tuple(x.shape),
                logical=flat_n[path],
                spec=str(spec),
                bytes_per_device=int(math.prod(shard)) * x.dtype.itemsize,
            )
        )
    return rows


def _is_spec(x):
    return isinstance(x, P)


# ---------------------------------------------------------------------------------------------- memory plan
GIB = 1024**3


def _abstract(shape, dtype, sharding):
    return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)


def train_step_memory(
    pl: Placement,
    *,
    algo_cfg,
    tx,
    mini_batch: int,
    prompt_len: int,
    response_len: int,
    micro_batch: int,
    opt_dtype=None,
    temperature: float = 1.0,
    with_ref_logp: bool = False,
) -> dict:
    """Per-device memory of one sharded train step, from XLA's compiled memory analysis of the real
    ``train_step_fn`` lowered on abstract shapes (nothing is allocated).

    ``opt_dtype``: dtype of the optimizer moments (default: the param dtype, as ``tx.init(params)``
    gives). Returns bytes: ``arguments`` (state + batch), ``outputs``, ``aliased`` (donated state reused
    for the new state), ``temp`` (activations, gradients, workspace), ``peak`` = arguments + outputs -
    aliased + temp, and the wall time of lowering and compiling.
    """
    import time

    from jaxrlvr import algos
    from jaxrlvr.train.step import TrainState

    cfg = pl.model_cfg
    params = abstract_params(cfg)
    opt_params = params
    if opt_dtype is not None:
        opt_params = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, opt_dtype), params)
    state = jax.eval_shape(
        lambda p, q: TrainState(
            step=jnp.int32(0),
            params=p,
            opt_state=tx.init(q),
            knobs=algos.initial_step_state(algo_cfg),
            ref_params=None,
        ),
        params,
        opt_params,
    )
    state = pl.abstract_state(state, tx)
    b, t = mini_batch, prompt_len + response_len
    bs = pl.batch
    batch = {
        "input_ids": _abstract((b, t), jnp.int32, bs),
        "attention_mask": _abstract((b, t), jnp.int32, bs),
        "old_logp": _abstract((b, response_len), jnp.float32, bs),
        "adv": _abstract((b, response_len), jnp.float32, bs),
        "mask": _abstract((b, response_len), jnp.int32, bs),
        "truncated": _abstract((b,), jnp.bool_, bs),
    }
    if with_ref_logp:
        batch["ref_logp"] = _abstract((b, response_len), jnp.float32, bs)
    rng = jax.eval_shape(lambda: jax.random.key(0))
    rng = jax.ShapeDtypeStruct(rng.shape, rng.dtype, sharding=pl.replicated)
    t0 = time.time()
    lowered = pl.lower_train_step(
        state,
        batch,
        rng,
        model_cfg=cfg,
        algo_cfg=algo_cfg,
        tx=tx,
        prompt_len=prompt_len,
        temperature=temperature,
        micro_batch=micro_batch,
        lr_fn=None,
    )
    t1 = time.time()
    compiled = lowered.compile()
    t2 = time.time()
    ma = compiled.memory_analysis()
    args, outs = int(ma.argument_size_in_bytes), int(ma.output_size_in_bytes)
    alias, temp = int(ma.alias_size_in_bytes), int(ma.temp_size_in_bytes)
    state_bytes = sum(
        int(math.prod(x.sharding.shard_shape(x.shape))) * jnp.dtype(x.dtype).itemsize
        for x in jax.tree.leaves(state)
        if hasattr(x, "sharding") and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
    )
    return {
        "arguments": args,
        "outputs": outs,
        "aliased": alias,
        "temp": temp,
        "generated_code": int(ma.generated_code_size_in_bytes),
        "peak": args + outs - alias + temp,
        "state": state_bytes,
        "lower_s": t1 - t0,
        "compile_s": t2 - t1,
    }


def sampler_cache_memory(mesh: Mesh, model_cfg: ModelConfig, batch: int, tokens: int) -> dict:
    """Bytes of the sampler's KV cache for ``batch`` rows of ``tokens`` slots (prompt + response), in
    total and per device under :func:`cache_shardings`, plus the decoding weights per device
    (:func:`sampler_param_shardings`). Abstract shapes only."""
    from jaxrlvr.sampling import inference

    chunks = inference.cache_chunks(tokens, 1, None, 1)  # one chunk of `tokens` slots: same bytes as any split
    cache = jax.eval_shape(lambda: inference.init_cache(model_cfg, batch, chunks))
    sh = cache_shardings(mesh, model_cfg, cache)

    def nbytes(tree, shardings):
        return sum(
            int(math.prod(s.shard_shape(x.shape))) * jnp.dtype(x.dtype).itemsize
            for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings), strict=True)
        )

    total = sum(int(math.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(cache))
    ip = jax.eval_shape(functools.partial(inference.prepare_params, model_cfg), abstract_params(model_cfg))
    return {
        "batch": batch,
        "tokens": tokens,
        "dtype": model_cfg.dtype,
        "cache_total": total,
        "cache_per_device": nbytes(cache, sh),
        "weights_per_device": nbytes(ip, sampler_param_shardings(mesh, model_cfg, ip)),
    }


__all__ = [
    "ACTIVATION_AXES",
    "BATCH_AXES",
    "DEFAULT_RULES",
    "MESH_AXES",
    "MeshError",
    "Placement",
    "activation_rules",
    "batch_sharding",
    "cache_shardings",
    "check_mesh_shape",
    "conform",
    "describe",
    "generate",
    "initialize_distributed",
    "logical_to_spec",
    "make_mesh",
    "mesh_from_config",
    "param_specs",
    "placement",
    "put",
    "put_batch",
    "put_process_batch",
    "sampler_cache_memory",
    "replicated",
    "resolve_mesh_shape",
    "rules_from_config",
    "sampler_param_shardings",
    "single_device_mesh",
    "to_host",
    "train_step_memory",
    "validate_rules",
]

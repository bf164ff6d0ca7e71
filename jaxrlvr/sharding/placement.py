"""The :class:`Placement` of one (mesh, rule table, model): the shardings of params, optimizer state, train
state and batches (rows over ``('data', 'fsdp')``), and the caller's pure functions jitted with explicit
in/out shardings (the train step and scoring functions are passed in: this package never imports the
trainer), advantage shaping and sampling (:mod:`jaxrlvr.sharding.sampler`)."""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrlvr.models import ModelConfig, abstract_params, param_logical_axes
from jaxrlvr.models.partitioning import activation_sharding
from jaxrlvr.sharding.mesh import (
    DEFAULT_RULES,
    MESH_AXES,
    MeshError,
    _path_str,
    activation_rules,
    batch_divisor,
    batch_sharding,
    param_specs,
    replicated,
    validate_rules,
)
from jaxrlvr.sharding.sampler import generate as _generate
from jaxrlvr.sharding.sampler import sampler_param_shardings
from jaxrlvr.sharding.transfer import conform, put, put_batch


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

    # ---- the caller's pure functions, jitted with explicit shardings ----
    def train_step(self, step_fn, state, batch, rng, **static):
        """``step_fn(state, batch, rng, **static) -> (state, metrics)`` (the trainer's pure update, e.g.
        ``jaxrlvr.train.step.train_step_fn``) on this mesh: in/out shardings explicit, ``state`` donated.
        ``static`` (hashable: configs, the optimizer, ``micro_batch``) is bound before jitting; the state
        follows :meth:`state_shardings` (it needs ``static["tx"]``)."""
        if "micro_batch" in static:
            self.check_rows(static["micro_batch"], "train.micro_batch_size")
        fn, state_sh = self._train_step_jit(step_fn, state, batch, static)
        state = conform(state, state_sh)
        batch = conform(batch, self.batch)
        with self.context():
            return fn(state, batch, conform(rng, self.replicated))

    def lower_train_step(self, step_fn, state, batch, rng, **static):
        """``jit(...).lower`` of the sharded train step on abstract arguments (memory planning)."""
        fn, _ = self._train_step_jit(step_fn, state, batch, static)
        with self.context():
            return fn.lower(state, batch, rng)

    def _train_step_jit(self, step_fn, state, batch, static):
        """(the jitted ``step_fn`` with explicit shardings and donated state, the state's shardings), cached
        per function, state / batch structure and static arguments."""
        if "tx" not in static:
            raise TypeError("Placement.train_step needs the optimizer as the static argument tx=")
        key = (
            "train_step",
            step_fn,
            jax.tree.structure(state),
            jax.tree.structure(batch),
            tuple(sorted(static.items())),
        )
        hit = self._cache.get(key)
        if hit is None:
            state_sh = self.state_shardings(state, static["tx"])
            fn = jax.jit(
                functools.partial(step_fn, **static),
                in_shardings=(state_sh, self.batch, self.replicated),
                out_shardings=(state_sh, self.replicated),
                donate_argnums=0,
            )
            hit = self._cache[key] = (fn, state_sh)
        return hit

    def score_tokens(self, score_fn, model_cfg, params, input_ids_BS, attention_mask_BS, **static):
        """``score_fn(model_cfg, params, input_ids_BS, attention_mask_BS, **static)`` (e.g.
        ``jaxrlvr.train.step.score_tokens_fn``) on this mesh: its per-row results (e.g. log-probs and
        entropies [B, R]) with rows sharded over ``('data', 'fsdp')``."""
        if "micro_batch" in static:
            self.check_rows(static["micro_batch"], "train.micro_batch_size")
        key = ("score", score_fn, model_cfg, tuple(sorted(static.items())))
        fn = self._cache.get(key)
        if fn is None:
            shardings = self.param_shardings if model_cfg == self.model_cfg else None
            fn = jax.jit(
                lambda p, i, m: score_fn(model_cfg, p, i, m, **static),
                in_shardings=(shardings, self.batch, self.batch),
                out_shardings=self.batch,
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
        """``sampling.generate`` on this mesh (same arguments and result); see
        :func:`jaxrlvr.sharding.sampler.generate`."""
        return _generate(self, config, params, prompts, **kwargs)

    def for_model(self, config: ModelConfig) -> Placement:
        """The placement of another model on the same mesh and rules."""
        return placement(self.mesh, config, self.rules)


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

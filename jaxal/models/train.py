"""Training of the source model M_S and of fine-tuned target models.

A pure `train_step(state, batch)` runs under `jax.pmap` over all local devices:
gradients, metrics and BatchNorm statistics are averaged over the device axis
(BatchNorm uses the statistics of the whole global batch, so N devices give the
update of one device on the same batch). Optimiser: optax SGD with momentum and
decoupled-from-loss L2 weight decay on the kernels, with a constant, step or
warmup-cosine learning-rate schedule (method guide §1: ResNet-18 on the
source classes; supplement section 1: 90 epochs, snapshots every 15).

Across hosts the same code runs under `jax.distributed` (see
`jaxal.models.distributed`): each process feeds its share of the global batch to its
local devices and pmap's collectives span all devices.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Iterable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxal import _validation as V
from jaxal import _xla_cpu
from jaxal.models.checkpoint import Snapshots
from jaxal.errors import InputError

SCHEDULES = ("constant", "step", "cosine")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Hyper-parameters of one training run (flags map onto these fields)."""
  num_epochs: int = 90
  batch_size: int = 256  # global, over all devices and hosts
  learning_rate: float = 0.1  # for batch_size 256; not rescaled automatically
  momentum: float = 0.9
  weight_decay: float = 1e-4
  schedule: str = "step"  # "constant", "step" (x0.1 at step_epochs) or "cosine"
  step_epochs: tuple[int, ...] = (30, 60, 80)
  warmup_epochs: int = 0
  snapshot_every: int = 15  # paper: 6 snapshots of a 90-epoch run
  compute_dtype: str = "float32"  # "bfloat16" on accelerators
  seed: int = 0

  def validate(self) -> "TrainConfig":
    """Checks the schedule, dtype and sizes; returns self or raises `ValueError`."""
    if self.schedule not in SCHEDULES:
      raise InputError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}.")
    if self.compute_dtype not in ("float32", "bfloat16"):
      raise InputError("compute_dtype must be 'float32' or 'bfloat16', got "
                       f"{self.compute_dtype!r}.")
    V.check_seed(self.seed, "TrainConfig.seed")
    for name in ("num_epochs", "batch_size"):
      if getattr(self, name) <= 0:
        raise InputError(f"{name} must be > 0, got {getattr(self, name)}.")
    if self.batch_size % jax.device_count():
      raise InputError(f"batch_size={self.batch_size} must be divisible by the "
                       f"{jax.device_count()} devices; pick a multiple.")
    return self


class TrainState(train_state.TrainState):
  """Flax's `TrainState` with the model's BatchNorm statistics beside the parameters."""
  batch_stats: Any = None


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
  """The learning-rate schedule of `config` (warmup, then cosine or constant) in steps."""
  lr, total = config.learning_rate, config.num_epochs * steps_per_epoch
  warmup = config.warmup_epochs * steps_per_epoch
  if config.schedule == "constant":
    main = optax.constant_schedule(lr)
  elif config.schedule == "step":
    main = optax.piecewise_constant_schedule(
        lr, {e * steps_per_epoch - warmup: 0.1 for e in config.step_epochs})
  else:
    main = optax.cosine_decay_schedule(lr, max(total - warmup, 1))
  if not warmup:
    return main
  return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup), main], [warmup])


@functools.lru_cache(maxsize=64)
def _compiled_schedule(config: TrainConfig, steps_per_epoch: int):
  return jax.jit(jax.vmap(make_schedule(config, steps_per_epoch)))


def learning_rates(config: TrainConfig, steps_per_epoch: int) -> np.ndarray:
  """[num_epochs * steps_per_epoch] float32: the rate of every step, evaluated
  by XLA from the optax schedule (the float32 values the schedule gives inside
  a step), so the step takes it as an input and one compiled step serves every
  schedule."""
  steps = jnp.arange(config.num_epochs * steps_per_epoch, dtype=jnp.int32)
  return np.asarray(_compiled_schedule(config, steps_per_epoch)(steps), np.float32)


def _unit_rate(count):
  del count
  return 1.0


@functools.lru_cache(maxsize=None)
def make_optimizer(momentum: float,
                   weight_decay: float) -> optax.GradientTransformation:
  """SGD with momentum; L2 weight decay on kernels (ndim > 1), not BN/biases.

  The learning rate is not part of it: `train_step` multiplies the update by
  the step's rate, an input (`learning_rates`), so one compiled step serves
  every schedule, length and batch count (a step compiled per fine-tuning cell
  of a sweep costs 2-4 s on CPU). The optimizer keeps a unit-rate schedule so
  its state is optax SGD's, with its step count: checkpoints of that layout
  restore into it. One object per (momentum, weight decay): a state
  carries its optimizer as static data, and equal objects are what let pmap
  reuse its compilation.
  """
  decay_mask = lambda params: jax.tree_util.tree_map(lambda p: p.ndim > 1, params)
  return optax.chain(
      optax.add_decayed_weights(weight_decay, mask=decay_mask),
      optax.sgd(_unit_rate, momentum=momentum))


@functools.lru_cache(maxsize=64)
def _first_equal(model: nn.Module) -> nn.Module:
  return model


def _apply_fn(model: nn.Module):
  """`model.apply` of the first module seen equal to `model`. A train state
  carries its `apply_fn` as static data, and bound methods of two equal modules
  compare unequal (Python compares their `self` by identity), so each clone of
  a model (a new head per fine-tuning cell) would make pmap trace and compile
  the train step again."""
  return _first_equal(model).apply


def create_state(model: nn.Module, config: TrainConfig, image_shape, params=None,
                 batch_stats=None) -> TrainState:
  """A fresh state (or one around given params/batch_stats, for fine-tuning)."""
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0)
  variables = _jitted_init(model)(key, jnp.zeros((1, *image_shape), jnp.float32))
  return TrainState.create(
      apply_fn=_apply_fn(model),
      params=variables["params"] if params is None else params,
      batch_stats=variables.get("batch_stats", {}) if batch_stats is None
      else batch_stats,
      tx=make_optimizer(config.momentum, config.weight_decay))


def train_step(state: TrainState, batch, learning_rate, *, model: nn.Module,
               axis_name="batch"):
  """One SGD step on a per-device batch at `learning_rate` (a float32 scalar);
  collectives over `axis_name`."""

  def loss_fn(params):
    (logits, _), updates = model.apply(
        {"params": params, "batch_stats": state.batch_stats}, batch["image"],
        train=True, mutable=["batch_stats"])
    logits = logits.astype(jnp.float32)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits,
                                                           batch["label"]).mean()
    return loss, (logits, updates["batch_stats"])

  (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  state = apply_update(state, grads, stats, learning_rate, axis_name)
  metrics = {"loss": loss,
             "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}
  return state, jax.lax.pmean(metrics, axis_name)


def apply_update(state: TrainState, grads, batch_stats, learning_rate,
                 axis_name="batch") -> TrainState:
  """The step's update: gradients and BatchNorm statistics averaged over
  `axis_name`, then `state.tx`'s update times `learning_rate` (a float32
  scalar). Shared by the classification and the SimCLR steps."""
  grads = jax.lax.pmean(grads, axis_name)
  batch_stats = jax.lax.pmean(batch_stats, axis_name)
  # The optimizer's update is -1 x (decayed, momentum-averaged gradient); times
  # the rate it is exactly optax SGD's -rate x the same (a sign flip is exact).
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  updates = jax.tree_util.tree_map(
      lambda u: jnp.asarray(learning_rate, u.dtype) * u, updates)
  return state.replace(step=state.step + 1,
                       params=optax.apply_updates(state.params, updates),
                       opt_state=opt_state, batch_stats=batch_stats)


class _CompiledInit:
  """`model.init(key, x, train=False)` jitted, compiled once per input signature
  with the compiler options of `_xla_cpu.init_options` (on CPU: a third of the
  compile time, the same parameters)."""

  def __init__(self, model: nn.Module):
    self._jitted = jax.jit(functools.partial(model.init, train=False))
    self._compiled = {}

  def __call__(self, key, x):
    sig = (tuple((a.shape, a.dtype) for a in (key, x)), jax.config.jax_enable_x64)
    run = self._compiled.get(sig)
    if run is None:
      options = _xla_cpu.init_options(jax.default_backend())
      run = self._jitted if options is None else \
          self._jitted.lower(key, x).compile(compiler_options=options)
      self._compiled[sig] = run
    return run(key, x)


@functools.lru_cache(maxsize=16)
def _jitted_init(model: nn.Module) -> _CompiledInit:
  return _CompiledInit(model)


class _CompiledStep:
  """A pmapped train step compiled once per input signature, with the compiler
  options of `_xla_cpu.train_options` for its size (XLA:CPU's routing that wins
  at that size; none on other backends or across processes)."""

  def __init__(self, pmapped, width: int, platform: str):
    self._pmapped, self._width, self._platform = pmapped, width, platform
    self._compiled = {}

  def __call__(self, state, batch, rates):
    key = (jax.tree_util.tree_structure((state, batch)),
           tuple((x.shape, x.dtype) for x in jax.tree_util.tree_leaves(batch)))
    run = self._compiled.get(key)
    if run is None:
      per_device = jax.tree_util.tree_leaves(batch)[0].shape[1]
      options = _xla_cpu.train_options(self._platform, per_device * self._width)
      # Across processes a lowered pmap takes global arrays, its call local
      # ones: multi-host runs keep the process-wide routing.
      run = self._pmapped if options is None or jax.process_count() > 1 else \
          self._pmapped.lower(state, batch, rates).compile(compiler_options=options)
      self._compiled[key] = run
    return run(state, batch, rates)


@functools.lru_cache(maxsize=16)
def pmapped_train_step(model: nn.Module, compute_dtype: str = "float32",
                       devices: Optional[tuple] = None):
  """`train_step` under pmap over `devices` (default all local), the state
  donated; one per (model, dtype, devices), compiled once per batch shape, so
  repeated fits reuse its compilation. Call it as `step(state, batch, rates)`
  with `rates` one float32 rate per device."""
  dtype = jnp.bfloat16 if compute_dtype == "bfloat16" else jnp.float32
  pmapped = jax.pmap(functools.partial(
      train_step, model=model.clone(bn_axis_name="batch", dtype=dtype)),
      axis_name="batch", devices=devices, donate_argnums=(0,))
  platform = (devices or jax.local_devices())[0].platform
  return _CompiledStep(pmapped, getattr(model, "width", 64), platform)


def variables_of(state: TrainState) -> dict:
  """The Flax variables (`params`, `batch_stats`) of a train state."""
  return {"params": state.params, "batch_stats": state.batch_stats}


def shard(x: np.ndarray) -> np.ndarray:
  """[B, ...] -> [local devices, B / local devices, ...]."""
  n = jax.local_device_count()
  if x.shape[0] % n:
    raise InputError(f"batch of {x.shape[0]} is not divisible by the {n} local "
                     "devices; use a batch size that is.")
  return x.reshape(n, x.shape[0] // n, *x.shape[1:])


def replicate(tree, devices: Optional[Sequence[jax.Device]] = None):
  """One copy of `tree` per local device, stacked on a leading axis.

  The copies carry the sharding that a pmapped step's outputs carry (a
  "batch"-named mesh of the devices), so the step's second call hits the
  compilation of its first: with flax's `replicate` (a PmapSharding), jax 0.10
  traces and compiles the train step twice.
  """
  devices = list(devices or jax.local_devices())
  sharding = NamedSharding(Mesh(np.asarray(devices), ("batch",)),
                           PartitionSpec("batch"))

  def put(x):
    x = np.asarray(x)
    return jax.device_put(np.broadcast_to(x[None], (len(devices), *x.shape)),
                          sharding)

  return jax.tree_util.tree_map(put, tree)


def host_state(state: TrainState) -> TrainState:
  """The state of the first local device as host arrays (what is checkpointed).

  Copies each leaf's first addressable shard (one device's replica) to the
  host: no computation, so nothing is compiled (indexing `x[0]` compiled one
  small gather per leaf shape, about 60 for a ResNet, at the end of every
  `fit`, and such compilations have aborted a process that had TensorFlow
  loaded beside jaxlib). flax's `unreplicate` returns the whole
  array when pmap ran on a subset of the local devices.
  """
  def first(x):
    if isinstance(x, jax.Array):
      return np.asarray(x.addressable_shards[0].data)[0]
    return np.asarray(x)[0]
  return jax.tree_util.tree_map(first, state)


BatchFn = Callable[[int], Iterable[tuple[np.ndarray, np.ndarray]]]


def fit(model: nn.Module, config: TrainConfig, train_batches: BatchFn, *,
        steps_per_epoch: int, image_shape, workdir: Optional[str] = None,
        init: Optional[TrainState] = None,
        log: Callable[[dict], None] = None,
        stop_after_steps: Optional[int] = None,
        step: Optional[Callable] = None,
        pack: Optional[Callable] = None,
        optimizer: Optional[optax.GradientTransformation] = None) -> TrainState:
  """Trains `model`, resuming from `workdir` if it holds a checkpoint.

  Args:
    model: a Flax module returning `(logits, features)`.
    config: hyper-parameters.
    train_batches: `train_batches(epoch)` yields this process's `(images,
      labels)` batches of epoch `epoch` (images [B, H, W, C] float, labels [B]
      int), `steps_per_epoch` of them; it must be deterministic in `epoch` so a
      resumed run repeats exactly what an uninterrupted one does.
    steps_per_epoch: batches per epoch.
    image_shape: (H, W, C) of one image.
    workdir: checkpoints go to workdir (latest epoch + snapshots); None: none.
    init: optional initial state (fine-tuning); default a fresh one.
    log: called with a dict of metrics after every epoch, once that epoch's
      checkpoint is saved; default prints.
    stop_after_steps: raise KeyboardInterrupt after this many steps of this call
      (tests use it to kill a run).
    step: the pmapped step, called as `step(state, batch, rates)` and returning
      `(state, metrics)`; default `pmapped_train_step` (classification).
      Self-supervised pretraining (`jaxal.models.simclr`) passes its own.
    pack: turns one item of `train_batches(epoch)` into the step's batch of
      per-device arrays; default `(images, labels)` -> {"image", "label"}.
    optimizer: the state's optimizer after a restore (default
      `make_optimizer(config.momentum, config.weight_decay)`); `init` must
      carry the same.

  Returns:
    The final state, on the host.
  """
  config.validate()
  log = log or _print_progress
  state = init if init is not None else create_state(model, config, image_shape)
  snaps = Snapshots(workdir, config.snapshot_every) if workdir else None
  start, state = _resume(snaps, state, model, config, optimizer)
  p_step = step or pmapped_train_step(model, config.compute_dtype)
  pack = pack or _pack_labeled
  state = replicate(state)
  loop = _EpochLoop(p_step, pack, learning_rates(config, steps_per_epoch),
                    steps_per_epoch, stop_after_steps)
  t_start = time.perf_counter()
  for epoch in range(start, config.num_epochs):
    t0 = time.perf_counter()
    state, sums, images = loop.run(state, epoch, train_batches(epoch))
    # The steps were dispatched asynchronously: time them once they are done,
    # or images/s counts only the dispatch (hundreds of times the real rate).
    jax.block_until_ready((state, sums))
    seconds = time.perf_counter() - t0
    if snaps is not None:
      snaps.save(epoch + 1, host_state(state))
    # every device holds the step's metrics; the first device's, as logged
    means = {k: float(np.asarray(v)[0]) / steps_per_epoch
             for k, v in jax.device_get(sums).items()}
    log(_epoch_record(config, epoch + 1, start, means, images / seconds,
                      time.perf_counter() - t_start))
  return host_state(state)


def _resume(snaps: Optional[Snapshots], state: TrainState, model: nn.Module,
            config: TrainConfig, optimizer: Optional[optax.GradientTransformation]
            ) -> tuple[int, TrainState]:
  """(completed epochs, state) to start `fit` from: the newest trustworthy
  checkpoint of `snaps`, given back its static `apply_fn` and optimizer (a
  checkpoint holds arrays only), else (0, `state`)."""
  if snaps is not None:
    restored = snaps.restore_latest(state)
    if restored is not None:
      start, state = restored
      return start, state.replace(
          apply_fn=_apply_fn(model),
          tx=optimizer or make_optimizer(config.momentum, config.weight_decay))
  return 0, state


class _EpochLoop:
  """The steps of `fit`'s epochs: packs each item, runs the pmapped step at
  the step's rate, sums the metrics on device, and counts the steps of the
  whole `fit` call for its `stop_after_steps` test hook."""

  def __init__(self, step: Callable, pack: Callable, rates: np.ndarray,
               steps_per_epoch: int, stop_after_steps: Optional[int]):
    self.step, self.pack, self.rates = step, pack, rates
    self.steps_per_epoch, self.stop_after_steps = steps_per_epoch, stop_after_steps
    self.per_device = np.ones(jax.local_device_count(), np.float32)
    self.steps_done = 0  # over every epoch of this fit call

  def run(self, state: TrainState, epoch: int, items: Iterable
          ) -> tuple[TrainState, Any, int]:
    """Trains on epoch `epoch`'s `items`; returns (state, the device-side sums
    of the step metrics, one per device, images seen by all processes).
    Raises ValueError when `items` holds other than `steps_per_epoch` batches,
    KeyboardInterrupt at the test hook's step."""
    sums, count, images = None, 0, 0
    for item in items:
      batch = self.pack(*item)
      rate = self.rates[min(epoch * self.steps_per_epoch + count,
                            len(self.rates) - 1)]
      state, metrics = self.step(state, batch, self.per_device * rate)
      sums = metrics if sums is None else _add_metrics(sums, metrics)
      count += 1
      images += item[0].shape[0] * jax.process_count()
      self.steps_done += 1
      if self.stop_after_steps is not None and \
          self.steps_done >= self.stop_after_steps:
        raise KeyboardInterrupt(f"stopped after {self.steps_done} steps (test hook)")
    if count != self.steps_per_epoch:
      raise InputError(f"train_batches({epoch}) yielded {count} batches, expected "
                       f"steps_per_epoch={self.steps_per_epoch}.")
    return state, sums, images


@jax.jit
def _add_metrics(sums: Any, metrics: Any) -> Any:
  """The running sums of the steps' metrics, on device: one dispatch a step
  (indexing each metric's first device and adding them one by one took four
  dispatches a step, ~2 ms on 4 CPU devices, against 0.25 ms)."""
  return jax.tree_util.tree_map(jnp.add, sums, metrics)


def _epoch_record(config: TrainConfig, done: int, start: int, means: dict,
                  images_per_second: float, elapsed: float) -> dict:
  """What `fit` logs after epoch `done` (1-based) of a call that resumed after
  `start` epochs and has run for `elapsed` seconds: the metric means, the
  throughput and the time left at the call's rate so far."""
  return {"epoch": done, "epochs": config.num_epochs, **means,
          "images_per_second": images_per_second,
          "seconds_left": elapsed / (done - start) * (config.num_epochs - done)}


def _pack_labeled(images, labels) -> dict:
  return {"image": shard(np.asarray(images, np.float32)),
          "label": shard(np.asarray(labels, np.int32))}


def _print_progress(m: dict) -> None:
  if jax.process_index() == 0:
    print(f"epoch {m['epoch']}/{m['epochs']}: loss {m['loss']:.4f}, accuracy "
          f"{m['accuracy']:.4f}, {m['images_per_second']:.0f} images/s, "
          f"{m['seconds_left']:.0f} s left", flush=True)

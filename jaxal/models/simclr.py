"""SimCLR (Chen et al., ICML 2020): self-supervised features of an unlabeled pool.

TypiClust and ProbCover (see `jaxal.coldstart`) state that their advantage comes
from self-supervised features learned on the pool itself (SimCLR for
CIFAR-10/100 and ImageNet subsets). This module trains jaxal's ResNet that way,
without labels, under the same pmap training path as M_S (`jaxal.models.train`:
multi-device, resumable from orbax snapshots, progress with time left)::

    net = simclr.SimCLR(width=8, stem="cifar")
    state = simclr.pretrain(net, images_uint8, simclr.SimCLRConfig(epochs=20),
                            workdir="work/ssl/checkpoints")
    backbone, variables = simclr.backbone(net, state)  # a ResNet, no class head
    feats, _ = inference.predict(backbone, variables, pool, transform=normalize)

Stated [S], confirmed in code [C], reconstructed [R]:

- [S] two views of each image (`jaxal.models.augment`), an encoder f (ResNet,
  global-pooled features h) and a projection head g (one hidden layer with a
  ReLU, Chen et al. eq. 1); the loss is NT-Xent (eq. 1 of the paper, `nt_xent`)
  over the 2N views of a batch with temperature tau, the other 2(N - 1) views
  being the negatives. The features kept for downstream use are h, not g(h).
- [S] SimCLR trains with LARS at batch 4096 (ImageNet), or 256-4096 on CIFAR-10
  with tau 0.5 and 1000 epochs. [C] The SCAN pretext code that TypiClust's code
  reuses trains SimCLR on CIFAR with SGD, momentum 0.9, learning rate 0.4,
  weight decay 1e-4, cosine decay, batch 512, tau 0.1, 500 epochs, and a head
  of hidden width equal to the feature width, output 128; those are our
  defaults, except the epochs (CPU-sized here; the flag sets them).
- [R] "sgd" excludes BatchNorm parameters and biases from the weight decay, as
  jaxal's M_S does. "lars" is optax's trust ratio (coefficient 1e-3) on the
  decayed gradient, momentum then the learning rate; SimCLR's own LARS applies
  the rate before the momentum, which differs only while the rate changes.
- [R] the learning rate is linear in the batch size from 0.4 at 512 (SCAN's
  choice at that batch), with one warm-up epoch, unless set.
- [C] BatchNorm statistics of the encoder are averaged over the devices (global
  BN, as SimCLR's code), and the loss's negatives are every device's views
  (an all-gather), so N devices compute the update of one on the same batch.
- [R] views come from per-example keys `fold_in(key(seed, step), i)` for
  example i of the global batch: a resumed run, or one on another number of
  devices, sees the same augmentations.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxal import _validation as V
from jaxal.errors import InputError
from jaxal.models import augment, resnet, train

OPTIMIZERS = ("sgd", "lars")
KIND = "simclr"  # `config.json`'s "kind" of a source work directory holding one


def nt_xent(z1, z2, temperature: float, *, z_all=None, offset=0):
  """SimCLR's NT-Xent loss, averaged over the 2N anchors of the views `z1`,
  `z2` [N, D] (view i of z1 and view i of z2 are a positive pair).

  For anchor a with positive p: l(a) = -log(exp(s(a, p) / t) /
  sum_{k != a} exp(s(a, k) / t)), s the cosine similarity. `z_all` (the
  concatenation [z1; z2] of every device, in device order) gives the negatives
  when the batch is split over devices; `offset` is where this device's [z1;
  z2] starts in it. Without it the negatives are [z1; z2] itself.

  Example:
    >>> import numpy as np
    >>> z = np.eye(2, dtype=np.float32)
    >>> round(float(nt_xent(z, z, 1.0)), 4)  # log(e + 2) - 1
    0.5514
  """
  if temperature <= 0:
    raise InputError(f"temperature must be > 0, got {temperature}.")
  n = z1.shape[0]
  local = _unit(jnp.concatenate([z1, z2]).astype(jnp.float32))
  every = local if z_all is None else _unit(z_all.astype(jnp.float32))
  logits = local @ every.T / temperature  # [2N, 2N x devices]
  rows = jnp.arange(2 * n)
  self_col = offset + rows
  pos_col = offset + (rows + n) % (2 * n)
  logits = jnp.where(jnp.arange(every.shape[0])[None] == self_col[:, None],
                     -jnp.inf, logits)
  return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[rows, pos_col])


def _unit(z):
  return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


class SimCLR(nn.Module):
  """A ResNet encoder without a class head, and SimCLR's projection head.

  `__call__` returns `(projections g(h), features h)`; `encoder(net)` is the
  encoder as a plain `ResNet(num_classes=0)` for inference.
  """
  width: int = 64
  stem: str = "cifar"
  arch: str = "resnet18"
  projection_dim: int = 128
  hidden_dim: Optional[int] = None  # None: the feature width (SCAN)
  dtype: object = jnp.float32
  bn_axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    _, h = encoder(self, name="backbone")(x, train=train)
    hidden = self.hidden_dim or h.shape[-1]
    g = nn.relu(nn.Dense(hidden, dtype=self.dtype, name="proj_hidden")(h))
    g = nn.Dense(self.projection_dim, dtype=self.dtype, name="proj_out")(g)
    return g.astype(jnp.float32), h


def encoder(net: SimCLR, **kw) -> nn.Module:
  """The encoder f of `net`: a class-head-less ResNet of its arch, width and stem."""
  return resnet.ARCHS[net.arch](num_classes=0, width=net.width, stem=net.stem,
                                dtype=net.dtype, bn_axis_name=net.bn_axis_name, **kw)


@dataclasses.dataclass(frozen=True)
class SimCLRConfig:
  """Hyper-parameters of one pretraining run (module docstring for sources)."""
  epochs: int = 20
  batch_size: int = 512
  temperature: float = 0.1
  learning_rate: Optional[float] = None  # None: 0.4 x batch_size / 512
  optimizer: str = "sgd"
  momentum: float = 0.9
  weight_decay: float = 1e-4
  warmup_epochs: int = 1
  snapshot_every: int = 0  # 0: no permanent snapshots (resume keeps the last two)
  compute_dtype: str = "float32"
  seed: int = 0
  augment: augment.AugmentConfig = augment.AugmentConfig()

  @property
  def peak_learning_rate(self) -> float:
    """The learning rate after warm-up (set, or scaled from SCAN's 0.4 at 512)."""
    if self.learning_rate is not None:
      return float(self.learning_rate)
    return 0.4 * self.batch_size / 512

  def validate(self, num_images: Optional[int] = None) -> "SimCLRConfig":
    """Checks every field (and the batch against `num_images`); returns self
    or raises `InputError` whose `field` is the field's name."""
    if not self.temperature > 0:
      raise InputError(f"temperature must be > 0, got {self.temperature}.",
                       field="temperature")
    if self.batch_size < 2:
      raise InputError(f"batch_size must be >= 2 (NT-Xent's negatives are the "
                       f"other images of the batch), got {self.batch_size}.",
                       field="batch_size")
    if self.optimizer not in OPTIMIZERS:
      raise InputError(f"optimizer must be one of {OPTIMIZERS}, got "
                       f"{self.optimizer!r}.", field="optimizer")
    if self.epochs < 1:
      raise InputError(f"epochs must be >= 1, got {self.epochs}.", field="epochs")
    if self.learning_rate is not None and not self.learning_rate > 0:
      raise InputError(f"learning_rate must be > 0, got {self.learning_rate}.",
                       field="learning_rate")
    if num_images is not None and self.batch_size > num_images:
      raise InputError(f"batch_size={self.batch_size} exceeds the {num_images} "
                       "images; lower it.", field="batch_size")
    V.check_seed(self.seed, "seed")
    self.augment.validate()
    self.train_config().validate()
    return self

  def train_config(self) -> train.TrainConfig:
    """The `train.TrainConfig` of the shared training path (cosine schedule)."""
    return train.TrainConfig(
        num_epochs=self.epochs, batch_size=self.batch_size,
        learning_rate=self.peak_learning_rate, momentum=self.momentum,
        weight_decay=self.weight_decay, schedule="cosine",
        warmup_epochs=min(self.warmup_epochs, self.epochs - 1),
        snapshot_every=self.snapshot_every, compute_dtype=self.compute_dtype,
        seed=self.seed)


@functools.lru_cache(maxsize=None)
def make_optimizer(name: str, momentum: float,
                   weight_decay: float) -> optax.GradientTransformation:
  """The update before the learning rate, which `train_step` applies: SGD as
  M_S's (`train.make_optimizer`), or LARS (module docstring)."""
  if name == "sgd":
    return train.make_optimizer(momentum, weight_decay)
  mask = lambda params: jax.tree_util.tree_map(lambda p: p.ndim > 1, params)
  return optax.chain(optax.add_decayed_weights(weight_decay, mask=mask),
                     optax.masked(optax.scale_by_trust_ratio(trust_coefficient=1e-3),
                                  mask),
                     optax.trace(momentum), optax.scale(-1.0))


def train_step(state: train.TrainState, batch, learning_rate, *, model: SimCLR,
               temperature: float, config: augment.AugmentConfig, seed: int,
               axis_name="batch"):
  """One SimCLR step on this device's share `batch["image"]` (uint8) of the
  global batch: views on the device, NT-Xent over every device's views."""
  images = batch["image"]
  b = images.shape[0]
  device = jax.lax.axis_index(axis_name)
  key = jax.random.fold_in(jax.random.PRNGKey(seed), state.step)
  v1, v2 = augment.views(key, images, device * b, config)

  def loss_fn(params):
    (z, _), updates = model.apply(
        {"params": params, "batch_stats": state.batch_stats},
        jnp.concatenate([v1, v2]), train=True, mutable=["batch_stats"])
    every = jax.lax.all_gather(z, axis_name, tiled=True)  # [z1; z2] per device
    loss = nt_xent(z[:b], z[b:], temperature, z_all=every, offset=device * 2 * b)
    return loss, updates["batch_stats"]

  (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = train.apply_update(state, grads, stats, learning_rate, axis_name)
  return state, {"loss": jax.lax.pmean(loss, axis_name)}


@functools.lru_cache(maxsize=16)
def pmapped_train_step(model: SimCLR, config: SimCLRConfig,
                       devices: Optional[tuple] = None):
  """`train_step` under pmap over `devices` (default all local), the state
  donated; call it as `step(state, batch, rates)`, one rate per device."""
  dtype = jnp.bfloat16 if config.compute_dtype == "bfloat16" else jnp.float32
  return jax.pmap(functools.partial(
      train_step, model=model.clone(bn_axis_name="batch", dtype=dtype),
      temperature=float(config.temperature), config=config.augment,
      seed=int(config.seed)), axis_name="batch", devices=devices,
      donate_argnums=(0,))


def create_state(net: SimCLR, config: SimCLRConfig, image_shape) -> train.TrainState:
  """A fresh train state of `net` carrying `config`'s optimizer (SGD or LARS)."""
  opt = make_optimizer(config.optimizer, config.momentum, config.weight_decay)
  state = train.create_state(net, config.train_config(), image_shape)
  return state.replace(tx=opt, opt_state=opt.init(state.params))


def unlabeled_batches(images: np.ndarray, *, batch_size: int, seed: int,
                      process_index: Optional[int] = None,
                      process_count: Optional[int] = None):
  """`(batches, steps_per_epoch)` over uint8 `images` [N, H, W, 3]: batches(epoch)
  yields this process's share of each global batch of a permutation seeded by
  (seed, epoch), as `(images,)` tuples; the last incomplete batch is dropped."""
  pc = jax.process_count() if process_count is None else process_count
  pi = jax.process_index() if process_index is None else process_index
  per_process = batch_size // pc
  steps = images.shape[0] // batch_size

  def batches(epoch: int):
    order = np.random.default_rng([seed, epoch]).permutation(images.shape[0])
    for i in range(steps):
      start = i * batch_size + pi * per_process
      yield (images[np.sort(order[start:start + per_process])],)
  return batches, steps


def _pack(images):
  return {"image": train.shard(np.asarray(images, np.uint8))}


def check_images(images) -> np.ndarray:
  """uint8 [N, H, W, 3] with N >= 2, or ValueError naming `images`."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise InputError(f"images must be [N, H, W, 3], got shape {images.shape}.")
  if images.dtype != np.uint8:
    raise InputError(f"images must be uint8 (0-255), got {images.dtype}.")
  if images.shape[0] < 2:
    raise InputError(f"images holds {images.shape[0]} image(s); SimCLR needs at "
                     "least 2 (a batch of 1 has no negatives).")
  return images


def pretrain(net: SimCLR, images, config: SimCLRConfig, *,
             workdir: Optional[str] = None,
             log: Optional[Callable[[dict], None]] = None,
             stop_after_steps: Optional[int] = None) -> train.TrainState:
  """Trains `net` by SimCLR on uint8 `images` without labels; resumes from
  `workdir` (orbax, verified manifests) when it holds a checkpoint.

  Returns the final host state (`backbone` takes the encoder out of it).
  """
  images = check_images(images)
  config.validate(num_images=images.shape[0])
  batches, steps = unlabeled_batches(images, batch_size=config.batch_size,
                                     seed=config.seed)
  init = create_state(net, config, images.shape[1:])
  return train.fit(net, config.train_config(), batches, steps_per_epoch=steps,
                   image_shape=images.shape[1:], workdir=workdir, init=init,
                   log=log or _print_progress, stop_after_steps=stop_after_steps,
                   step=pmapped_train_step(net, config), pack=_pack,
                   optimizer=init.tx)


def backbone(net: SimCLR, state) -> tuple[nn.Module, dict]:
  """(the encoder as a `ResNet(num_classes=0)`, its variables) of a SimCLR state
  or of its variables dict: what inference and `jaxal embed` run."""
  variables = state if isinstance(state, dict) else train.variables_of(state)
  model = encoder(net.clone(dtype=jnp.float32, bn_axis_name=None))
  return model, {"params": variables["params"]["backbone"],
                 "batch_stats": variables["batch_stats"]["backbone"]}


def _print_progress(m: dict) -> None:
  if jax.process_index() == 0:
    print(f"SimCLR epoch {m['epoch']}/{m['epochs']}: loss {m['loss']:.4f}, "
          f"{m['images_per_second']:.0f} images/s, {m['seconds_left']:.0f} s left",
          flush=True)

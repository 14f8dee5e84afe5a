"""A pool of features as rows shared by the cold-start kernels, on one device or
sharded by rows over several (the same code path).

Every kernel of `jaxal.coldstart` is written over the *local* rows of the pool:
a partial result over these rows, then `psum` over the device axis. On one device
the axis is absent and `psum` is the identity; on several the kernel runs under
`jax.shard_map` with the pool split by rows, as `jaxal.kcenter` shards it. Rows
are processed in blocks of `rows`, so no temporary grows with the pool beyond
O(rows x columns) and a few [N] vectors.

Block sizes depend on the platform (`rows_for`). On a CPU, blocks of a few
thousand rows keep a block's product in cache. On a GPU every iteration of a loop
over blocks costs its own kernel launches (and XLA:GPU may read the loop's
condition back to the host): at 1,024 rows a pass over 10^6 points is ~1,000
iterations whose products are too small to amortise that. The first GPU run
(bench/results/gpu_h200.txt) took 47-73 s at 2 x 10^5 points, which such costs
would explain. Off the CPU a block is therefore as large as a float32 temporary of
`ACCEL_BLOCK_BYTES` allows (not yet re-measured on a GPU).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxal import distances

AXIS = "pool"
ACCEL_BLOCK_BYTES = 1 << 28  # off the CPU: largest [rows, columns] float32 block
ACCEL_MAX_ROWS = 1 << 17


def round_up(n: int, k: int) -> int:
  return -(-n // k) * k


@dataclasses.dataclass(frozen=True)
class Layout:
  """How a pool of `n` points is padded and split: `shards` devices of `local`
  rows each, processed in blocks of `rows` (`local` is a multiple of `rows`)."""
  n: int
  shards: int
  rows: int

  @property
  def local(self) -> int:
    return round_up(max(1, -(-self.n // self.shards)), self.rows)

  @property
  def padded(self) -> int:
    return self.local * self.shards


def platform(devices: Optional[Sequence[jax.Device]]) -> str:
  """The platform the pool will be on: the devices', else the default backend's."""
  return devices[0].platform if devices else jax.default_backend()


def rows_for(devices: Optional[Sequence[jax.Device]], cpu_rows: int,
             columns: int) -> int:
  """Rows per block of a pass that forms [rows, columns] temporaries: `cpu_rows`
  on a CPU; elsewhere the largest power of two whose float32 block fits in
  `ACCEL_BLOCK_BYTES`, between 1,024 and `ACCEL_MAX_ROWS` (module docstring)."""
  if platform(devices) == "cpu":
    return cpu_rows
  fit = ACCEL_BLOCK_BYTES // (4 * max(int(columns), 1))
  return max(1024, min(ACCEL_MAX_ROWS, 1 << (max(fit, 1).bit_length() - 1)))


def square_rows_for(devices: Optional[Sequence[jax.Device]], cpu_rows: int) -> int:
  """Rows of a [rows, rows] tile: `cpu_rows` on a CPU; elsewhere the largest
  power of two whose float32 tile fits in `ACCEL_BLOCK_BYTES` (8,192)."""
  if platform(devices) == "cpu":
    return cpu_rows
  log2_elements = (ACCEL_BLOCK_BYTES // 4).bit_length() - 1
  return 1 << (log2_elements // 2)


def layout(n: int, devices: Optional[Sequence[jax.Device]], rows: int,
           align: int = 8) -> Layout:
  """`rows` per block, or fewer for a small pool: its rows rounded up to `align`."""
  shards = len(devices) if devices is not None and len(devices) > 1 else 1
  per = -(-n // shards)
  return Layout(n, shards, min(rows, round_up(per, align)))


def pad_rows(a: np.ndarray, size: int, value=0) -> np.ndarray:
  if a.shape[0] == size:
    return a
  pad = np.full((size - a.shape[0],) + a.shape[1:], value, a.dtype)
  return np.concatenate([a, pad])


def split(features: np.ndarray, devices: Optional[Sequence[jax.Device]], rows: int,
          align: int = 8):
  """(Layout, the padded float32 pool, [padded] bool of its real rows, the
  devices as a hashable tuple or None on one device)."""
  n = features.shape[0]
  lay = layout(n, devices, rows, align)
  x = pad_rows(np.asarray(features, np.float32), lay.padded)
  return lay, x, np.arange(lay.padded) < n, (tuple(devices) if lay.shards > 1 else None)


def sharded_jit(fn: Callable, lay: Layout, devices: Optional[tuple],
            out_row: tuple[bool, ...]):
  """jit of `fn(x, real, *replicated, axis)` over the pool split by rows.

  `out_row[i]` says whether output i is split by rows (else replicated).
  """
  def solve(x, real, *rep):
    return run(fn, lay, devices, (x, real), rep, out_row)
  return jax.jit(solve)


def run(fn: Callable, lay: Layout, devices, row_args: tuple, rep_args: tuple,
        out_row: tuple[bool, ...]):
  """Calls `fn(*row_args, *rep_args, axis)` on one device, or under shard_map.

  `row_args` are [padded, ...] arrays split by rows; `rep_args` are replicated.
  """
  if lay.shards == 1:
    return fn(*row_args, *rep_args, None)
  mesh = Mesh(np.asarray(devices), (AXIS,))
  row_args = tuple(jax.device_put(a, NamedSharding(mesh, P(AXIS))) for a in row_args)
  mapped = jax.shard_map(
      functools.partial(_call, fn), mesh=mesh,
      in_specs=tuple(P(AXIS) for _ in row_args) + tuple(P() for _ in rep_args),
      out_specs=tuple(P(AXIS) if r else P() for r in out_row), check_vma=False)
  return mapped(*row_args, *rep_args)


def _call(fn, *args):
  return fn(*args, AXIS)


def psum(x, axis):
  return x if axis is None else jax.lax.psum(x, axis)


def offset(local: int, axis):
  """Global index of this device's first row."""
  return 0 if axis is None else jax.lax.axis_index(axis) * local


def centered(x_local: jax.Array, real_local: jax.Array, axis):
  """(the pool's mean over its real rows [d], each local row's squared distance
  to it [local]): the centering `jaxal.distances` takes about."""
  n = psum(jnp.sum(real_local), axis)
  mean = psum(jnp.sum(jnp.where(real_local[:, None], x_local, 0), axis=0), axis) / n
  return mean, distances.centered_sq_norms(x_local, mean, jnp.ones_like(mean))


def gather(x_local: jax.Array, idx: jax.Array, axis) -> jax.Array:
  """Rows `idx` (global indices, any shape [m]) of the pool, on every device."""
  local = x_local.shape[0]
  rel = idx - offset(local, axis)
  own = (rel >= 0) & (rel < local)
  rows = x_local[jnp.clip(rel, 0, local - 1)]
  if axis is None:
    return rows
  return psum(jnp.where(own.reshape(own.shape + (1,) * (rows.ndim - 1)), rows,
                        jnp.zeros_like(rows)), axis)


def gather_vector(v_local: jax.Array, axis) -> jax.Array:
  """The whole [padded] vector from its local [local] parts."""
  return v_local if axis is None else jax.lax.all_gather(v_local, axis, tiled=True)


def block(a: jax.Array, b, rows: int) -> jax.Array:
  return jax.lax.dynamic_slice_in_dim(a, b * rows, rows)

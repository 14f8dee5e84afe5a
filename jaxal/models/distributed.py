"""Multi-host runs through JAX's own distributed runtime.

`initialize` wraps `jax.distributed.initialize`; call it first thing in every
process, before any other JAX call. On TPU pods and managed GPU clusters (SLURM,
Open MPI, Kubernetes) the arguments can be left out and JAX detects them. On CPU
it selects the gloo collectives so that pmap's cross-process reductions work
(tests use two local CPU processes). Afterwards each process feeds its share of
every global batch to its local devices (`jax.process_index()` of
`jax.process_count()`), and `jaxal.models.train.fit` runs unchanged.

CPU processes: use one CPU device per process (no
`--xla_force_host_platform_device_count` above 1). With two fake devices per
process the two-process test hung after connecting in 2 of 3 runs; with one it
passed 7 of 7 (BUILD.md).
"""

from __future__ import annotations

from typing import Optional

import jax

from jaxal.errors import InputError


def initialize(coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None, *,
               cpu_collectives: str = "gloo",
               initialization_timeout: int = 300) -> None:
  """Joins this process to a multi-process JAX run.

  Args:
    coordinator_address: "host:port" of process 0 (None: auto-detect).
    num_processes: total processes (None: auto-detect).
    process_id: this process's rank in [0, num_processes) (None: auto-detect).
    cpu_collectives: collectives implementation for the CPU backend.
    initialization_timeout: seconds to wait for every process to join.
  """
  if num_processes is not None and process_id is not None and not (
      0 <= process_id < num_processes):
    raise InputError(f"process_id must lie in [0, num_processes={num_processes}), "
                     f"got {process_id}.")
  jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id,
                             initialization_timeout=initialization_timeout)


def process_share(global_batch, index: Optional[int] = None,
                  count: Optional[int] = None):
  """This process's contiguous slice of a global batch (first axis)."""
  index = jax.process_index() if index is None else index
  count = jax.process_count() if count is None else count
  n = len(global_batch)
  if n % count:
    raise InputError(f"global batch of {n} is not divisible by {count} processes.")
  per = n // count
  return global_batch[index * per:(index + 1) * per]


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (no-op alone)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)

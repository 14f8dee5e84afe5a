"""Training snapshots with orbax-checkpoint, verified before they are loaded.

The paper's ensemble (method guide §3, "+ens"; supplement section 1) trains
M_S for 90 epochs and keeps a snapshot every 15. `Snapshots` keeps two series
under one directory:

- `snapshots/<epoch>`: every `snapshot_every` epochs, never deleted;
- `latest/<epoch>`: the last two completed epochs, to resume a killed run.

Orbax writes each checkpoint to a temporary directory and renames it when done,
so an interrupted save never looks complete. On top of that, a SHA-256 manifest of
the checkpoint's files is written (atomically) once orbax has finished; a
checkpoint without a manifest, or whose files do not match it, or that fails to
load, is skipped with a warning and the next older one is tried. Nothing corrupt
is ever loaded.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxal import io
from jaxal.errors import InputError


def _manifest(step_dir: str) -> dict:
  out = {}
  for root, _, files in os.walk(step_dir):
    for name in sorted(files):
      path = os.path.join(root, name)
      out[os.path.relpath(path, step_dir)] = io.file_sha256(path)
  return out


class _Series:
  """One orbax CheckpointManager plus its manifests."""

  def __init__(self, directory: str, max_to_keep: Optional[int]):
    self.dir = os.path.abspath(directory)
    self.manifests = self.dir + ".manifests"
    os.makedirs(self.manifests, exist_ok=True)
    self.manager = ocp.CheckpointManager(
        self.dir, options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
            enable_async_checkpointing=False))

  def _manifest_path(self, step: int) -> str:
    return os.path.join(self.manifests, f"{step}.json")

  def save(self, step: int, tree: Any) -> None:
    if step in self.manager.all_steps():
      # Only an untrusted or superseded checkpoint can sit at a step being
      # recomputed (resume starts after the newest trusted one): replace it.
      self.manager.delete(step)
    self.manager.save(step, args=ocp.args.StandardSave(tree), force=True)
    self.manager.wait_until_finished()
    if jax.process_index() == 0:
      io.write_json(self._manifest_path(step),
                    _manifest(os.path.join(self.dir, str(step))))
      kept = {str(s) for s in self.manager.all_steps()}
      for name in os.listdir(self.manifests):  # drop manifests of deleted steps
        if name.endswith(".json") and name[:-5] not in kept:
          os.remove(os.path.join(self.manifests, name))

  def steps(self) -> list[int]:
    self.manager.reload()
    return sorted(self.manager.all_steps())

  def restore(self, step: int, target: Any) -> Optional[Any]:
    """The tree saved at `step`, or None (with a warning) if it cannot be trusted."""
    want = io.read_json(self._manifest_path(step))
    if want is None:
      warnings.warn(f"checkpoint {self.dir}/{step} has no manifest (interrupted "
                    "while finishing?); skipping it.")
      return None
    have = _manifest(os.path.join(self.dir, str(step)))
    if have != want:
      bad = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
      warnings.warn(f"checkpoint {self.dir}/{step} is corrupt ({len(bad)} file(s) "
                    f"differ from its manifest, e.g. {bad[0]}); skipping it.")
      return None
    abstract = jax.tree_util.tree_map(
        lambda v: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype), target)
    try:
      return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # noqa: BLE001 (orbax/tensorstore raise many types)
      warnings.warn(f"checkpoint {self.dir}/{step} failed to load "
                    f"({type(e).__name__}: {e}); skipping it.")
      return None


class Snapshots:
  """Per-epoch resumable checkpoints and the paper's periodic snapshots.

  Args:
    directory: root folder; created if missing.
    snapshot_every: keep a permanent snapshot every this many epochs (paper: 15
      of 90); 0 keeps none.
  """

  def __init__(self, directory: str, snapshot_every: int):
    if snapshot_every < 0:
      raise InputError(f"snapshot_every must be >= 0, got {snapshot_every}.")
    self.snapshot_every = snapshot_every
    self.latest = _Series(os.path.join(directory, "latest"), max_to_keep=2)
    self.snapshots = _Series(os.path.join(directory, "snapshots"), max_to_keep=None)

  def save(self, epoch: int, state: Any) -> None:
    """Saves `state` (host pytree) after `epoch` completed epochs."""
    self.latest.save(epoch, state)
    if self.snapshot_every and epoch % self.snapshot_every == 0:
      self.snapshots.save(epoch, state)

  def restore_latest(self, target: Any) -> Optional[tuple[int, Any]]:
    """(epoch, state) of the newest trustworthy checkpoint, or None.

    Looks at the resumable series and the periodic snapshots alike, newest
    first, so a corrupt latest checkpoint falls back to the last good snapshot.
    """
    candidates = sorted([(s, 1, self.latest) for s in self.latest.steps()] +
                        [(s, 0, self.snapshots) for s in self.snapshots.steps()],
                        key=lambda c: c[:2], reverse=True)
    for step, _, series in candidates:
      tree = series.restore(step, target)
      if tree is not None:
        return step, tree
    return None

  def snapshot_epochs(self) -> list[int]:
    """The epochs that have a saved, verified snapshot, in order."""
    return self.snapshots.steps()

  def restore_snapshot(self, epoch: int, target: Any) -> Any:
    """The snapshot of `epoch` restored into the structure of `target`."""
    tree = self.snapshots.restore(epoch, target)
    if tree is None:
      raise InputError(f"snapshot of epoch {epoch} under {self.snapshots.dir} is "
                       "missing or corrupt; see the warning above.")
    return tree

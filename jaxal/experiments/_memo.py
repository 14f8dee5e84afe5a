"""What a sweep's cells share, keyed by a digest of what determines it.

`digest` names a result by its inputs (the pools, M_S, the cached outputs and
their files in WORKDIR/cache); `Bounded` keeps the latest results in memory
under those keys.
"""

from __future__ import annotations

import collections
import hashlib
import json

import numpy as np


def digest(*parts) -> str:
  """16 hex digits of SHA-256 over `parts`: arrays by their bytes, anything
  else as sorted-key JSON (`str` for what JSON cannot hold). Cache files are
  named by it, so its bytes must not change."""
  h = hashlib.sha256()
  for p in parts:
    h.update(np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray)
             else json.dumps(p, sort_keys=True, default=str).encode())
  return h.hexdigest()[:16]


class Bounded:
  """A dict of at most `size` entries, the least recently used dropped first.

  The protocol keeps what a sweep's cells share (pools, M_S, its outputs) here,
  keyed by what each depends on, instead of `functools.lru_cache` on methods,
  which keys on `self` too and keeps every Protocol it saw alive."""

  def __init__(self, size: int):
    self.size, self.items = int(size), collections.OrderedDict()

  def get(self, key, make):
    """The value under `key`, made by `make()` (and kept) when absent."""
    if key in self.items:
      self.items.move_to_end(key)
      return self.items[key]
    value = self.items[key] = make()
    while len(self.items) > self.size:
      self.items.popitem(last=False)
    return value

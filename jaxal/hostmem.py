"""Host buffers that XLA:CPU can use in place.

XLA's CPU client aliases a NumPy array instead of copying it only when the data
is 64-byte aligned; NumPy's large allocations are usually 16-byte aligned, so a
pool of features passed to a jitted kernel is silently copied (2x the memory of
the features). Allocate pools that will be handed to jaxal kernels with
`aligned_empty` (or copy once with `aligned`) to keep peak memory at one copy.
"""

from __future__ import annotations

import numpy as np

ALIGNMENT = 64


def aligned_empty(shape, dtype=np.float32) -> np.ndarray:
  """An uninitialised array whose data starts on a 64-byte boundary."""
  dtype = np.dtype(dtype)
  nbytes = int(np.prod(shape)) * dtype.itemsize
  raw = np.empty(nbytes + ALIGNMENT, np.uint8)
  offset = (-raw.ctypes.data) % ALIGNMENT
  return raw[offset:offset + nbytes].view(dtype).reshape(shape)


def is_aligned(array: np.ndarray) -> bool:
  return array.ctypes.data % ALIGNMENT == 0


def aligned(array, dtype=None) -> np.ndarray:
  """`array` as a C-contiguous aligned array of `dtype`; copies only if needed."""
  a = np.asarray(array, dtype=dtype)
  if a.flags.c_contiguous and is_aligned(a):
    return a
  out = aligned_empty(a.shape, a.dtype)
  out[...] = a
  return out

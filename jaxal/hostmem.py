"""Host buffers that XLA:CPU can use in place, on huge pages where possible.

XLA's CPU client aliases a NumPy array instead of copying it only when the data
is 64-byte aligned; NumPy's large allocations are usually 16-byte aligned, so a
pool of features passed to a jitted kernel is silently copied (2x the memory of
the features). Allocate pools that will be handed to jaxal kernels with
`aligned_empty` (or copy once with `aligned`) to keep peak memory at one copy.

Large buffers are also 2 MiB aligned and advised as transparent huge pages
(Linux `madvise` mode, the common default): kernels that stream the whole pool
once per step (k-center) then take fewer TLB misses.
"""

from __future__ import annotations

import mmap

import numpy as np

ALIGNMENT = 64
_HUGE = 2 << 20  # huge page size on x86-64 and most aarch64 kernels


def aligned_empty(shape, dtype=np.float32) -> np.ndarray:
  """An uninitialised array whose data starts on a 64-byte boundary."""
  dtype = np.dtype(dtype)
  nbytes = int(np.prod(shape)) * dtype.itemsize
  if nbytes >= _HUGE and hasattr(mmap, "MADV_HUGEPAGE"):
    region = mmap.mmap(-1, nbytes + _HUGE,
                       flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    region.madvise(mmap.MADV_HUGEPAGE)
    raw = np.frombuffer(region, np.uint8)  # keeps the mapping alive
    align = _HUGE
  else:
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    align = ALIGNMENT
  offset = (-raw.ctypes.data) % align
  return raw[offset:offset + nbytes].view(dtype).reshape(shape)


def is_aligned(array: np.ndarray) -> bool:
  """Whether `array`'s data starts on an `ALIGNMENT`-byte boundary."""
  return array.ctypes.data % ALIGNMENT == 0


def aligned(array, dtype=None) -> np.ndarray:
  """`array` as a C-contiguous aligned array of `dtype`; copies only if needed."""
  a = np.asarray(array, dtype=dtype)
  if a.flags.c_contiguous and is_aligned(a):
    return a
  out = aligned_empty(a.shape, a.dtype)
  out[...] = a
  return out

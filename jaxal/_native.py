"""Native XLA:CPU kernels, compiled on first use, for what XLA:CPU's own code runs
far below the memory floor.

`margin` (`jaxal.uncertainty.margin`, method guide §3): XLA:CPU (jaxlib 0.10)
lowers every formulation of a row's top two that was tried (variadic reduce,
top_k, sort, masked max, halving tournaments) through its loop emitter at 1.5-3
GB/s, 10-11x the time of a plain read of the probabilities on a 2-core AVX-512
Xeon (bench/results/acquisition_cpu_xeon_avx512_amx.txt). `csrc/margin.cc` is the
same top two in vector registers, on XLA's intra-op threads, as an XLA FFI
custom call: the same values, bit for bit (max, min and one subtraction).

Build. On the first call in a process, `$CXX` (default `g++`) compiles
`csrc/margin.cc` with jaxlib's FFI headers (`-O3 -march=native`) into a cache
folder (`$JAXAL_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxal`, else `~/.cache/jaxal`),
named by a hash of the source, the command, jaxlib's version and the CPU (model
and flags): another CPU or jaxlib builds its own. The library is written to a
temporary name and renamed, so a concurrent or interrupted build never leaves a
broken one. If anything fails (no compiler, no headers, loading, registration),
or `JAXAL_NATIVE=0`, jaxal uses XLA's formulation and `status()` says why.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from typing import Optional

import jax

from jaxal import _xla_cpu

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")
MARGIN_TARGET = "jaxal_margin_f32"
_status: dict[str, str] = {}


def status() -> dict[str, str]:
  """{kernel: "native (library path)" or "XLA: why not native"} of the kernels
  asked for so far in this process."""
  return dict(_status)


def cache_dir() -> str:
  if os.environ.get("JAXAL_CACHE_DIR"):
    return os.environ["JAXAL_CACHE_DIR"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                          ".cache")
  return os.path.join(base, "jaxal")


def _cpu_key() -> str:
  """The CPU's model and flags (a library built with -march=native is theirs)."""
  lines = [line for line in (_xla_cpu.read_cpuinfo() or "").splitlines()
           if line.startswith(("model name", "flags", "cpu family", "model\t"))]
  return "\n".join(sorted(set(lines))) or platform.processor() or platform.machine()


def _build(name: str) -> str:
  """Path of the compiled library of csrc/<name>.cc, building it if needed."""
  src = os.path.join(_SRC, f"{name}.cc")
  with open(src, "rb") as f:
    code = f.read()
  cxx = os.environ.get("CXX", "g++")
  if shutil.which(cxx) is None:
    raise RuntimeError(f"no C++ compiler ({cxx!r} not found; set CXX)")
  flags = ["-O3", "-march=native", "-std=c++17", "-shared", "-fPIC",
           "-I" + jax.ffi.include_dir()]
  import jaxlib  # noqa: PLC0415 (its version names the headers)
  key = hashlib.sha256(b"\0".join([code, cxx.encode(), " ".join(flags).encode(),
                                   jaxlib.__version__.encode(),
                                   _cpu_key().encode()])).hexdigest()[:16]
  folder = cache_dir()
  lib = os.path.join(folder, f"{name}-{key}.so")
  if os.path.exists(lib):
    return lib
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".so", dir=folder)
  os.close(fd)
  try:
    done = subprocess.run([cxx, *flags, src, "-o", tmp], capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
      raise RuntimeError(f"{cxx} failed: {done.stderr.strip()[-500:]}")
    os.replace(tmp, lib)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return lib


@functools.lru_cache(maxsize=None)
def margin_target() -> Optional[str]:
  """The registered FFI target of the native margin on CPU, or None (then
  `status()["margin"]` says why)."""
  if os.environ.get("JAXAL_NATIVE", "1") == "0":
    _status["margin"] = "XLA: JAXAL_NATIVE=0"
    return None
  try:
    lib = _build("margin")
    handler = ctypes.cdll.LoadLibrary(lib).JaxalMarginF32
    jax.ffi.register_ffi_target(MARGIN_TARGET, jax.ffi.pycapsule(handler),
                                platform="cpu")
  except Exception as e:  # noqa: BLE001 (any failure: fall back, say why)
    _status["margin"] = f"XLA: {type(e).__name__}: {e}"
    return None
  _status["margin"] = f"native ({lib})"
  return MARGIN_TARGET

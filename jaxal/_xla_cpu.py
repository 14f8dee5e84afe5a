"""XLA:CPU convolution routing, set before JAX starts its CPU backend.

Why (measured on this project's 2-core x86 CPU, jaxlib 0.10.2): XLA:CPU
hands convolutions to YNNPACK by default (its fusion types individual_dot,
reduce and individual_convolution). For ResNet-18's 3x3 convolutions that path
runs at 60 GFLOP/s forward and 7 GFLOP/s for the kernel gradient (a convolution
with a 32x32 window), against 140 and 98 GFLOP/s on XLA's own Eigen path; the
kernel gradient alone made training 2.6x slower than necessary at width 64. So
jaxal keeps YNNPACK for dots and reductions, sends convolutions back to Eigen,
and also gives YNNPACK the elementwise fusions (BatchNorm, ReLU, optimizer:
a further ~6% on a training step):
`--xla_cpu_experimental_ynn_fusion_type=individual_dot,reduce,eltwise`.
Training images/s at width 64, batch 128, 32 px: 13.0 with XLA's default,
34.7 without YNNPACK convolutions, 37.2 with the elementwise fusions too.

Only applied when XLA_FLAGS does not already set that option, when the
installed jaxlib is one where it was measured (>= 0.10; older XLAs abort on an
unknown flag), and unless JAXAL_KEEP_XLA_FLAGS=1. XLA reads XLA_FLAGS once, when
the first backend starts: import jaxal before running any JAX computation (a
warning says so otherwise). The option only concerns the CPU compiler.

The elementwise fusions are a trade: +6% on a training step but -27% on an
inference pass (130 -> 95 images/s at the same size), so jaxal's inference
computations are compiled with `inference_options` (the same routing without
`eltwise`), a per-computation override of the process-wide flag.

The training trade depends on size (Intel Xeon family 6 model 167,
AVX-512 + AMX, jaxlib 0.10.2; ms per ResNet-18 train step, eltwise / without):
per-device batch x width 256 (width 8, batch 32: the quickstart's fine-tuning)
40.3 / 27.8; 1024 (8x128, 16x64, 32x32) 146/140, 141/147, 193/184; 2048
(8x256, 16x128, 32x64) 279/282, 285/313, 348/379; 8192 (64x128) 1896/2246.
YNNPACK's elementwise fusions pay off on large activations and cost a fixed
overhead per fusion on small ones, so `train_options` drops them below batch x
width 1024, where the plain routing wins clearly; at 1024 the two are within
noise of each other and the fusions stay, so an M_S of width 8 at batch 128
keeps YNNPACK's routing.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import warnings

_OPTION = "xla_cpu_experimental_ynn_fusion_type"
FLAG = f"--{_OPTION}=individual_dot,reduce,eltwise"
# Per-computation compiler options take the enum names, not the flag's words.
_INFERENCE = {_OPTION: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
_TRAIN_LARGE = {_OPTION: _INFERENCE[_OPTION] + ",LIBRARY_FUSION_TYPE_ELTWISE"}
_TRANSFORMER_INFERENCE = {_OPTION: ""}  # no YNNPACK fusion: Eigen's dots
_ELTWISE_FROM = 1024  # per-device batch x model width
# Parameter initialisation compiled at LLVM level 1 (see `init_options`).
_INIT = {"xla_backend_optimization_level": 1}
_MIN_JAXLIB = (0, 10)
# k-center's kernel and random selection's permutation compiled with XLA's older
# loop emitters (`loop_emitter_options`), measured on jaxlib 0.10 only: the option
# may not exist in other releases.
_LOOP_EMITTERS = {"xla_cpu_use_fusion_emitters": False}
_LOOP_EMITTERS_JAXLIB = (0, 10)


def _jaxlib_version() -> tuple[int, ...]:
  try:
    v = importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return ()
  return tuple(int(p) for p in v.split(".")[:2] if p.isdigit())


def _ours() -> bool:
  """Whether jaxal may choose the routing (the user has not chosen one)."""
  return (os.environ.get("JAXAL_KEEP_XLA_FLAGS") != "1"
          and _jaxlib_version() >= _MIN_JAXLIB
          and _OPTION not in os.environ.get("XLA_FLAGS", "").replace(FLAG, ""))


def cpu_isa(cpuinfo: str) -> str:
  """The widest x86 vector ISA named in /proc/cpuinfo text: "AVX-512", "AVX2",
  "AVX" or "other" (non-x86, or no flags line)."""
  flags = set()
  for line in cpuinfo.splitlines():
    if line.startswith(("flags", "Features")):
      flags = set(line.split(":", 1)[1].split())
      break
  for isa, flag in (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("AVX", "avx")):
    if flag in flags:
      return isa
  return "other"


def read_cpuinfo() -> str | None:
  """This machine's /proc/cpuinfo text, or None where there is none."""
  try:
    with open("/proc/cpuinfo") as f:
      return f.read()
  except OSError:
    return None


def cpu_description(cpuinfo: str | None = None) -> str:
  """"<model name> (family F, model M), <ISA>, <n> logical CPUs" from
  /proc/cpuinfo text (read from the machine when None), e.g. "AMD EPYC (family
  25, model 17), AVX-512, 2 logical CPUs": the family alone does not tell Zen 3
  (AVX2) from Zen 4 (AVX-512). "+ AMX" follows the ISA where the CPU has tiles."""
  if cpuinfo is None:
    cpuinfo = read_cpuinfo()
    if cpuinfo is None:
      return "unknown CPU (no /proc/cpuinfo)"
  fields = {}
  for line in cpuinfo.splitlines():
    key, _, value = line.partition(":")
    fields.setdefault(key.strip(), value.strip())
  model = fields.get("model name", "unknown model")
  ids = [f"{k} {fields[f]}" for k, f in (("family", "cpu family"), ("model", "model"))
         if f in fields]
  if ids:
    model += f" ({', '.join(ids)})"
  isa = cpu_isa(cpuinfo)
  if "amx_tile" in fields.get("flags", "").split():
    isa += " + AMX"
  count = sum(1 for line in cpuinfo.splitlines() if line.startswith("processor"))
  return f"{model}, {isa}, {count} logical CPUs"


def routing() -> str:
  """What jaxal chose for XLA:CPU, in words (for benchmark headers)."""
  flags = os.environ.get("XLA_FLAGS", "")
  if FLAG in flags and _ours():
    return (f"{FLAG} (set by jaxal); inference, and train steps below batch x "
            f"width {_ELTWISE_FROM}, compiled with individual_dot,reduce; ViT "
            "inference with no YNNPACK fusion (Eigen dots); "
            "stride-2 input gradients by phases (jaxal.models.strided_conv)")
  if _OPTION in flags:
    return f"user's XLA_FLAGS: {flags}; stride-2 input gradients by phases"
  return "XLA defaults (JAXAL_KEEP_XLA_FLAGS=1 or old jaxlib); stride-2 input " \
      "gradients by phases"


def inference_options(platform: str, *, transformer: bool = False) -> dict | None:
  """Compiler options for an inference computation on `platform`, or None.

  YNNPACK for dots and reductions, Eigen for convolutions and XLA's own
  elementwise fusions; only on the CPU backend, and only where jaxal chooses
  the routing (see the module docstring).

  `transformer=True` (the ViTs of `jaxal.models.vit`): no YNNPACK fusion at
  all, XLA's Eigen dots. YNNPACK runs a ViT's batched attention products at
  ~21 GFLOP/s and its dense layers at ~100 (DINOv2 S/14, batch 32, 224 px,
  2-core AMD Zen 4); without it the model took 2.6-2.7 s instead of 4.2-4.7
  (11.7-11.8 against 6.9-7.6 images/s, the same features within 5e-6 of 3.8),
  while the ResNets do not change beyond noise either way.
  """
  if platform != "cpu" or not _ours():
    return None
  return dict(_TRANSFORMER_INFERENCE if transformer else _INFERENCE)


def train_options(platform: str, batch_times_width: int) -> dict | None:
  """Compiler options for a train step on `platform` whose per-device batch
  times the model's width is `batch_times_width`, or None (the process-wide
  routing). YNNPACK's elementwise fusions only from `_ELTWISE_FROM` on (see the
  module docstring); only on CPU, only where jaxal chooses the routing."""
  if platform != "cpu" or not _ours():
    return None
  return dict(_TRAIN_LARGE if batch_times_width >= _ELTWISE_FROM else _INFERENCE)


def init_options(platform: str) -> dict | None:
  """Compiler options for a model's parameter initialisation on `platform`, or
  None (XLA's defaults).

  Initialising ResNet-18 is one threefry hash per parameter (62 of them), which
  XLA:CPU unrolls into a large module that LLVM spends seconds optimising for a
  computation run once per model. At optimisation level 1 instead of XLA's
  default the compilation of the quickstart's width-8 ResNet-18 takes 2.2 s
  instead of 6.6 s (Intel Xeon family 6 model 167, jaxlib 0.10.2),
  and the parameters came out bit for bit the same for the three ResNet-18
  configurations tried (widths 8 and 16, both stems, 20-100 classes; a test
  keeps checking one). The module is integer hashing plus a few float operations per
  parameter; level 0 does change those values, and is not used. Only on CPU,
  only where jaxal chooses the routing.
  """
  if platform != "cpu" or not _ours():
    return None
  return dict(_INIT)


def loop_emitter_options(platform: str) -> dict | None:
  """Compiler options for k-center's kernel (`jaxal.kcenter`), random
  selection's permutation (`jaxal.acquisition`) and the balancing step's
  row-block kernel (`jaxal.balancing`: +27 -> +5-6 MiB to compile at N = 1M,
  N_t = 100, the same picks) on `platform`, or None (XLA's
  defaults): XLA:CPU's older loop emitters instead of its MLIR fusion emitters.

  Measured in fresh processes (Intel Xeon family 6 model 167). The
  k-center kernel is one computation of ~190 loop fusions. The MLIR emitters
  took +200 MiB of resident memory to compile it, freed afterwards but not
  returned to the system, so a first core-set call on 1M x 512 features came to
  260 bytes per point beyond the features, of which ~40 are the kernel's own
  state. The older emitters compile it in +37 MiB and 0.4-0.8 s faster, with the
  same selections; warm calls are within -2 to +14% across three pools
  (`merge`'s wide path keeps them level: argmin's variadic reduce is slower
  there). The permutation at N = 1M: +17-30 MiB -> +2 MiB, 540-552 ms either way,
  the same values. Not used elsewhere: with the older emitters entropy took 50-65
  instead of 42 ms and margin 145 instead of 72-78 (50,000 x 1,000).

  Only on CPU, only on the jaxlib measured, not with JAXAL_KEEP_XLA_FLAGS=1 nor
  when XLA_FLAGS sets the option itself.
  """
  if (platform != "cpu" or os.environ.get("JAXAL_KEEP_XLA_FLAGS") == "1"
      or _jaxlib_version()[:2] != _LOOP_EMITTERS_JAXLIB
      or "xla_cpu_use_fusion_emitters" in os.environ.get("XLA_FLAGS", "")):
    return None
  return dict(_LOOP_EMITTERS)


def apply() -> bool:
  """Adds FLAG to XLA_FLAGS if allowed; returns whether XLA will see it."""
  flags = os.environ.get("XLA_FLAGS", "")
  if _OPTION in flags:
    return FLAG in flags
  if not _ours():
    return False
  os.environ["XLA_FLAGS"] = (flags + " " + FLAG).strip()
  jax = sys.modules.get("jax")
  if jax is not None:
    try:
      from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
      started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
      started = False
    if started:
      warnings.warn("jaxal was imported after JAX started its backends, so XLA:CPU "
                    "keeps its slower default convolutions; import jaxal first or "
                    f"set XLA_FLAGS={FLAG}", RuntimeWarning, stacklevel=3)
      return False
  return True

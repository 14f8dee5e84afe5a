"""XLA:CPU routing chosen by jaxal (jaxal/_xla_cpu.py)."""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import _xla_cpu


def _xla_flags_after_import(env_updates):
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "JAXAL_KEEP_XLA_FLAGS")}
  env.update(env_updates)
  code = "import os, jaxal; print(os.environ.get('XLA_FLAGS', ''))"
  out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                       capture_output=True, text=True, timeout=120)
  return out.stdout.strip()


def test_import_sets_the_routing_unless_the_user_chose_one():
  assert _xla_flags_after_import({}) == _xla_cpu.FLAG
  own = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
  assert _xla_flags_after_import({"XLA_FLAGS": own}) == own
  assert _xla_flags_after_import({"JAXAL_KEEP_XLA_FLAGS": "1"}) == ""


def test_inference_options_only_for_cpu_and_only_when_ours(monkeypatch):
  monkeypatch.delenv("JAXAL_KEEP_XLA_FLAGS", raising=False)
  monkeypatch.setenv("XLA_FLAGS", _xla_cpu.FLAG)
  opts = _xla_cpu.inference_options("cpu")
  assert opts == {"xla_cpu_experimental_ynn_fusion_type":
                  "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
  assert _xla_cpu.inference_options("gpu") is None
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=reduce")
  assert _xla_cpu.inference_options("cpu") is None
  monkeypatch.setenv("XLA_FLAGS", _xla_cpu.FLAG)
  monkeypatch.setenv("JAXAL_KEEP_XLA_FLAGS", "1")
  assert _xla_cpu.inference_options("cpu") is None


def test_loop_emitter_options_only_for_cpu_on_the_jaxlib_measured(monkeypatch):
  monkeypatch.delenv("JAXAL_KEEP_XLA_FLAGS", raising=False)
  monkeypatch.setenv("XLA_FLAGS", _xla_cpu.FLAG)
  monkeypatch.setattr(_xla_cpu, "_jaxlib_version", lambda: (0, 10, 2))
  assert _xla_cpu.loop_emitter_options("cpu") == {"xla_cpu_use_fusion_emitters": False}
  assert _xla_cpu.loop_emitter_options("gpu") is None
  monkeypatch.setattr(_xla_cpu, "_jaxlib_version", lambda: (0, 12, 0))
  assert _xla_cpu.loop_emitter_options("cpu") is None  # the option may be gone there
  monkeypatch.setattr(_xla_cpu, "_jaxlib_version", lambda: (0, 10, 2))
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
  assert _xla_cpu.loop_emitter_options("cpu") is None  # the user's choice stands
  monkeypatch.setenv("XLA_FLAGS", _xla_cpu.FLAG)
  monkeypatch.setenv("JAXAL_KEEP_XLA_FLAGS", "1")
  assert _xla_cpu.loop_emitter_options("cpu") is None


@pytest.mark.parametrize("options", ["inference_options", "loop_emitter_options"])
def test_this_xla_accepts_jaxals_compiler_options(monkeypatch, options):
  # The option names and enum words are XLA's; a jaxlib that renamed them must
  # fail here, not in a user's pool inference or selection.
  monkeypatch.setenv("XLA_FLAGS", _xla_cpu.FLAG)
  monkeypatch.delenv("JAXAL_KEEP_XLA_FLAGS", raising=False)
  opts = getattr(_xla_cpu, options)("cpu")
  if opts is None:
    pytest.skip("another jaxlib: jaxal passes no option there")
  f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum(-1), compiler_options=opts)
  x = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
  np.testing.assert_allclose(f(x), np.tanh(x @ x.T).sum(-1), rtol=1e-5)


ZEN5 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16
processor\t: 1
cpu family\t: 26
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16
"""
ZEN3 = ZEN5.replace(" avx512f avx512bw avx512_bf16", "").replace("26", "25")
XEON_AMX = ZEN5.replace("AMD EPYC", "Intel(R) Xeon(R) Processor").replace(
    "26", "6").replace("model\t\t: 2", "model\t\t: 167").replace(
        "avx512_bf16", "avx512_bf16 amx_bf16 amx_tile amx_int8")
ARM = "processor\t: 0\nFeatures\t: fp asimd sve\nCPU implementer\t: 0x41\n"


def test_cpu_description_names_model_and_isa_of_either_kind():
  assert _xla_cpu.cpu_isa(ZEN5) == "AVX-512"
  assert _xla_cpu.cpu_isa(ZEN3) == "AVX2"
  assert _xla_cpu.cpu_isa(ARM) == "other"
  assert _xla_cpu.cpu_description(ZEN5) == \
      "AMD EPYC (family 26, model 2), AVX-512, 2 logical CPUs"
  assert _xla_cpu.cpu_description(ZEN3) == \
      "AMD EPYC (family 25, model 2), AVX2, 2 logical CPUs"
  assert _xla_cpu.cpu_description(XEON_AMX) == \
      "Intel(R) Xeon(R) Processor (family 6, model 167), AVX-512 + AMX, 2 logical CPUs"
  # this machine's, whatever it is: the same form, its ISA as cpu_isa reads it
  live = _xla_cpu.read_cpuinfo()
  here = _xla_cpu.cpu_description()
  if live is None:
    assert here == "unknown CPU (no /proc/cpuinfo)"
  else:
    m = re.fullmatch(r".+, (AVX-512|AVX2|other)( \+ AMX)?, ([1-9]\d*) logical CPUs", here)
    assert m, here
    assert m.group(1) == _xla_cpu.cpu_isa(live)
    assert int(m.group(3)) == sum(1 for l in live.splitlines() if l.startswith("processor"))


def test_train_options_by_size_only_for_cpu_and_only_when_ours(monkeypatch):
  monkeypatch.delenv("JAXAL_KEEP_XLA_FLAGS", raising=False)
  monkeypatch.setenv("XLA_FLAGS", _xla_cpu.FLAG)
  key = "xla_cpu_experimental_ynn_fusion_type"
  small = _xla_cpu.train_options("cpu", 8 * 32)  # the quickstart's fine-tuning
  large = _xla_cpu.train_options("cpu", 64 * 128)  # bench/train.py's size
  assert small == _xla_cpu.inference_options("cpu")
  assert large[key].split(",") == small[key].split(",") + ["LIBRARY_FUSION_TYPE_ELTWISE"]
  assert _xla_cpu.train_options("cpu", 1023) == small
  assert _xla_cpu.train_options("cpu", 8 * 128) == large  # the quickstart's M_S
  assert _xla_cpu.train_options("gpu", 64 * 128) is None
  monkeypatch.setenv("JAXAL_KEEP_XLA_FLAGS", "1")
  assert _xla_cpu.train_options("cpu", 8 * 32) is None


def test_this_xla_accepts_the_train_options(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", _xla_cpu.FLAG)
  monkeypatch.delenv("JAXAL_KEEP_XLA_FLAGS", raising=False)
  x = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
  for size in (1, 10**6):
    f = jax.jit(lambda x: jnp.maximum(x @ x.T, 0.5).sum(-1))
    out = f.lower(x).compile(compiler_options=_xla_cpu.train_options("cpu", size))(x)
    np.testing.assert_allclose(out, np.maximum(x @ x.T, 0.5).sum(-1), rtol=1e-5)

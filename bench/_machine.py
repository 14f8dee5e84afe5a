"""The header every benchmark prints: the device JAX runs on and the CPU (a
committed result names both)."""

import jax

from jaxal import _xla_cpu


def print_machine() -> None:
  dev = jax.devices()[0]
  print(f"device: {dev.device_kind} ({jax.default_backend()}), "
        f"{len(jax.devices())} device(s); jax {jax.__version__}")
  print(f"cpu: {_xla_cpu.cpu_description()}")

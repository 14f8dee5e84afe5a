"""Test setup: CPU backend with 4 fake devices, so multi-device paths run.

XLA reads XLA_FLAGS when the backend starts, so this must run before any test
imports jax; `python3 run.py test` sets the same flags.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=4").strip()


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "torch: compares with a live PyTorch/torchvision (skipped without "
      "them; `python3 run.py test --torch` installs them and runs these)")

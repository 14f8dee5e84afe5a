"""Test setup shared by every test module.

- The CPU backend with 4 fake devices, so multi-device paths run. XLA reads
  XLA_FLAGS when the backend starts, so this runs before any test imports jax;
  `python3 run.py test` sets the same flags.
- A persistent compilation cache for the session (`JAX_COMPILATION_CACHE_DIR`
  under pytest's cache folder, `.pytest_cache/jax_compilation_cache`), set in
  the environment so that the many subprocesses the tests start (the `jaxal`
  command, the experiments, the benchmarks' smoke runs) reuse what an earlier
  process compiled instead of paying XLA's compilation again. A cached
  executable is the one XLA would compile: the same numbers. Set
  JAX_COMPILATION_CACHE_DIR yourself to move it; delete the folder to drop it.
- `ROOT` and `subprocess_env()`, the paths and environment the tests share.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(ROOT, ".pytest_cache", "jax_compilation_cache"))
# Every compilation is worth keeping here: the tests compile small kernels many
# times over in separate processes.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def subprocess_env(**extra) -> dict:
  """This process's environment (the flags and cache above included) with the
  repository first on PYTHONPATH, plus `extra`."""
  e = dict(os.environ)
  e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
  e.update(extra)
  return e


def two_processes(argv, env: dict, timeout: int = 600) -> list:
  """Runs the command `argv` (a list, or rank -> list) as two jax.distributed
  CPU processes (ranks 0 and 1, a free local port for the coordinator);
  [(returncode, stdout, stderr)] of each, in rank order."""
  import socket  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  of = argv if callable(argv) else (lambda _: argv)
  procs = [subprocess.Popen(list(of(i)) + [f"--coordinator_address=127.0.0.1:{port}",
                                          "--num_processes=2", f"--process_id={i}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for i in range(2)]
  outs = [p.communicate(timeout=timeout) for p in procs]
  return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "torch: compares with a live PyTorch/torchvision/transformers (skipped without "
      "them; `python3 run.py test --torch` installs them and runs these)")


# The files with the most test time (measured on 2 cores), longest first. run.py
# hands files to its two pytest-xdist workers in collection order
# (`--no-loadscope-reorder`), so the longest start first and the two workers
# finish together, instead of a long file starting last on one of them.
LONGEST_FIRST = ("tests/models/test_simclr.py", "tests/experiments/test_experiments.py",
                 "tests/models/test_train.py", "tests/experiments/test_table_flags.py",
                 "tests/cli/test_cli.py", "tests/test_package.py",
                 "tests/cli/test_label.py", "tests/cli/test_own_model.py")


def pytest_collection_modifyitems(config, items):
  del config
  rank = {f: i for i, f in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))

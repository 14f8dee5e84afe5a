#!/usr/bin/env python3
"""Entry point behind README's commands; needs only python3 (standard library).

    python3 run.py quickstart [--flag=value ...]   the main job, offline default
    python3 run.py test [pytest args ...]          the test suite (CPU, 4 devices,
                                                   2 worker processes; installs
                                                   Debian's chromium for the
                                                   labeling page's tests)
    python3 run.py test --torch [pytest args ...]  only the comparisons with a live
                                                   PyTorch/torchvision/transformers
                                                   (installs them into .venv
                                                   first: ~5.5 GB)
    python3 run.py docs [sphinx-build args ...]    the documentation site, into
                                                   docs/_build/html (warnings are
                                                   errors)
    python3 run.py bench NAME [--flag=value ...]   a benchmark in bench/
    python3 run.py exp NAME [--flag=value ...]     a script in experiments/

Each command first creates or refreshes `.venv` from requirements.txt: it
reinstalls only when the file's hash differs from the one stamped after the last
successful install, so an interrupted install is redone, never half-trusted.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
PY = os.path.join(VENV, "bin", "python")
REQS = os.path.join(ROOT, "requirements.txt")
STAMP = os.path.join(VENV, ".requirements.sha256")


def _digest() -> str:
  with open(REQS, "rb") as f:
    return hashlib.sha256(f.read() + sys.version.encode()).hexdigest()


def ensure_venv() -> None:
  want = _digest()
  if os.path.exists(PY) and os.path.exists(STAMP):
    with open(STAMP) as f:
      if f.read().strip() == want:
        return
  print(f"[run.py] installing requirements into {VENV} ...", flush=True)
  if not os.path.exists(PY):
    try:
      venv.EnvBuilder(with_pip=True).create(VENV)
    except Exception as e:  # Debian without python3-venv has no ensurepip
      print(f"[run.py] venv with pip failed ({e}); using the system pip", flush=True)
      venv.EnvBuilder(with_pip=False, clear=True).create(VENV)
  has_pip = subprocess.call([PY, "-m", "pip", "--version"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
  pip = [PY, "-m", "pip"] if has_pip else [sys.executable, "-m", "pip", "--python", PY]
  subprocess.check_call(pip + ["install", "--quiet", "--disable-pip-version-check",
                               "--no-compile", "-r", REQS])
  # Byte-compiled after the install, on every core (pip compiles one file at a
  # time: 51 s for the install against 29 s + 15 s on 2 cores). Where Python
  # does not write bytecode (PYTHONDONTWRITEBYTECODE), every test process would
  # otherwise compile TensorFlow's and JAX's modules again: importing them took
  # 12-13 s instead of 7 s, and the suite 12:08 instead of 9:43. A file that
  # does not compile (a package's Python 2 example) is left as pip leaves it.
  subprocess.call([PY, "-m", "compileall", "-q", "-j", "0", *_site_packages()],
                  stdout=subprocess.DEVNULL)
  tmp = STAMP + ".tmp"
  with open(tmp, "w") as f:
    f.write(want)
  os.replace(tmp, STAMP)


def _site_packages() -> list:
  """The venv's folders of installed packages (pure and platform: one folder
  on most systems)."""
  out = subprocess.check_output(
      [PY, "-c", "import sysconfig; print(sysconfig.get_path('purelib')); "
       "print(sysconfig.get_path('platlib'))"], text=True).split()
  return sorted(set(out))


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def ensure_browser() -> None:
  """The labeling page's tests drive a system Chromium through Playwright (no
  browser download): install Debian's `chromium` when none is found."""
  if os.environ.get("JAXAL_CHROMIUM") or any(shutil.which(b) for b in BROWSERS):
    return
  if shutil.which("apt-get") is None or os.geteuid() != 0:
    print("[run.py] no Chromium found and cannot apt-get install it (needs root "
          "and apt); the labeling page's tests will fail. Install chromium, or "
          "set JAXAL_CHROMIUM=/path/to/chrome.", flush=True)
    return
  print("[run.py] installing Debian's chromium for the labeling page's tests ...",
        flush=True)
  env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
  subprocess.call(["apt-get", "update", "-qq"], env=env)
  subprocess.call(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                   "chromium"], env=env, stdout=subprocess.DEVNULL)


# torch and torchvision that work together on CPU (PyPI's torchvision fails to
# load beside the CPU-only torch 2.13.0 wheel); on aarch64 a smaller CPU pair.
TORCH = {"x86_64": ("torch==2.14.1", "torchvision==0.29.1"),
         "aarch64": ("torch==2.9.1", "torchvision==0.24.1")}
# The foundation encoders' references (DINOv2, SigLIP and their tokenizers).
TRANSFORMERS = ("transformers==5.23.0", "protobuf")


def ensure_torch() -> None:
  """torch, torchvision and transformers in .venv, for `test --torch` (never
  for CI)."""
  if subprocess.call([PY, "-c", "import torch, torchvision, transformers"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0:
    return
  pins = TORCH.get(os.uname().machine, TORCH["x86_64"]) + TRANSFORMERS
  print(f"[run.py] installing {' '.join(pins)} into {VENV} for --torch ...", flush=True)
  subprocess.check_call([PY, "-m", "pip", "install", "--quiet",
                         "--disable-pip-version-check", *pins])


def _workers(rest) -> list:
  """pytest-xdist's workers for the suite: two, each file's tests on one worker
  (module fixtures built once), unless the arguments choose (-n, -p no:xdist) or
  the machine has one core. Much of the suite waits on subprocesses and on
  XLA's single-threaded compilation, so two workers on 2 cores took 10 min 33 s
  where one took 15 min 08 s (AMD EPYC Zen 4)."""
  if (os.cpu_count() or 1) < 2 or any(
      a == "-n" or a.startswith(("-n", "--numprocesses", "--dist")) or "xdist" in a
      for a in rest):
    return []
  # files in collection order, which tests/conftest.py makes longest first
  return ["-n", "2", "--dist", "loadfile", "--no-loadscope-reorder"]


def main(argv) -> int:
  if len(argv) < 2 or argv[1] not in ("quickstart", "test", "docs", "bench", "exp"):
    print(__doc__)
    return 2
  ensure_venv()
  cmd, rest = argv[1], argv[2:]
  env = dict(os.environ)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  if cmd == "test" and "--torch" in rest:
    rest = [a for a in rest if a != "--torch"] + ["-m", "torch"]
    ensure_torch()
  if cmd == "test":
    ensure_browser()
    env.setdefault("JAX_PLATFORMS", "cpu")
    flags = env.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
      env["XLA_FLAGS"] = (flags + " --xla_force_host_platform_device_count=4").strip()
    if env.get("CI") and not any(a.startswith("--durations") for a in rest):
      rest = rest + ["--durations=30"]  # CI's log says where its time went
    args = [PY, "-m", "pytest", "-q", os.path.join(ROOT, "tests")] + _workers(rest) + rest
  elif cmd == "docs":
    env.setdefault("JAX_PLATFORMS", "cpu")
    args = [PY, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
            os.path.join(ROOT, "docs"), os.path.join(ROOT, "docs", "_build", "html")
            ] + rest
  elif cmd == "quickstart":
    args = [PY, os.path.join(ROOT, "experiments", "quickstart.py")] + rest
  else:
    if not rest:
      print(f"usage: python3 run.py {cmd} NAME [flags]")
      return 2
    folder = "bench" if cmd == "bench" else "experiments"
    args = [PY, os.path.join(ROOT, folder, rest[0] + ".py")] + rest[1:]
  return subprocess.call(args, env=env, cwd=ROOT)


if __name__ == "__main__":
  sys.exit(main(sys.argv))

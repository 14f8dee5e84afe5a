"""Generated work directories for the benchmarks that serve the labeling
page (`label.py`, `pool_map.py`): an embedded pool as `jaxal embed` leaves it,
without images (neither reads one), and `jaxal label` serving it in its own
process."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np


def make_workdir(base: str, n: int, k: int, d: int, seed: int = 0):
  """An embedded work directory as `jaxal embed` leaves it; (wd, truth, classes)."""
  rng = np.random.default_rng(seed)
  share = np.geomspace(1.0, 0.05, k)
  y = rng.choice(k, size=n, p=share / share.sum())
  y[:k] = np.arange(k)
  centers = rng.normal(size=(k, d)) * 2
  feats = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
  logits = rng.normal(size=(n, 10)).astype(np.float32)
  probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
  classes = [f"class_{c:02d}" for c in range(k)]
  paths = [f"img{i:07d}.png" for i in range(n)]
  wd = os.path.join(base, "wd")
  os.makedirs(wd)
  os.makedirs(os.path.join(base, "images"))
  with open(os.path.join(wd, "paths.txt"), "w") as f:
    f.write("\n".join(paths) + "\n")
  np.savez(os.path.join(wd, "embedding.npz"), index=np.arange(n), features=feats,
           probs=probs, target_features=feats)
  source = os.path.join(base, "source")
  os.makedirs(source)
  with open(os.path.join(source, "classes.txt"), "w") as f:
    f.write("\n".join(f"source_{c}" for c in range(10)) + "\n")
  embed = {"images": os.path.join(base, "images"), "tfds": False, "source": source,
           "source_digest": "x", "ensemble": False, "image_size": 24, "chunk": 1024,
           "data_dir": None, "paths_digest": "x"}
  with open(os.path.join(wd, "workdir.json"), "w") as f:
    json.dump({"embed": embed}, f)
  classes_file = os.path.join(base, "classes.txt")
  with open(classes_file, "w") as f:
    f.write("\n".join(classes) + "\n")
  return wd, {p: classes[c] for p, c in zip(paths, y)}, classes_file


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def serve(wd: str, classes_file: str, *flags: str, timeout: float = 600):
  """`jaxal label --workdir=wd --classes=classes_file *flags` in its own process,
  once it answers; (process, port). Raises with its output if it exits first."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  port = free_port()
  env = {**os.environ, "PYTHONPATH": root, "JAX_PLATFORMS": "cpu"}
  srv = subprocess.Popen(
      [sys.executable, "-m", "jaxal", "label", f"--workdir={wd}",
       f"--classes={classes_file}", *flags, f"--port={port}"],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + timeout
  while True:
    if srv.poll() is not None:
      raise RuntimeError(f"jaxal label exited: {srv.stdout.read()[-3000:]}")
    try:
      conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
      conn.request("GET", "/api/state", headers={"X-Jaxal": "1", "Host": "127.0.0.1"})
      conn.getresponse().read()
      return srv, port
    except (ConnectionError, OSError):
      if time.time() > deadline:
        raise RuntimeError(f"jaxal label did not start in {timeout:.0f} s") from None
      time.sleep(0.2)

"""Generated work directories for the benchmarks that serve the labeling
page (`label.py`, `pool_map.py`): an embedded pool as `jaxal embed` leaves it,
without images (neither reads one), and a free port for the server."""

from __future__ import annotations

import json
import os
import socket

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

"""A small embedded work directory for the labeling tests, built without a
model: an image folder of PNGs, and features/probabilities in the layout
`jaxal embed` writes (clusters per class, one class rare), so the balancing
step has something to balance."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
from PIL import Image

from jaxal.datasets import procedural

from tests.conftest import ROOT, subprocess_env  # noqa: E402
XSS = "<script>alert(1)</script>"
CLASSES = ["cat", "dog", "bird", XSS]  # the last is rare
SOURCE_NAMES = [f"source_{c}" for c in "abcdef"]


def make(base, *, n=48, seed=0, classes=CLASSES):
  """(workdir, {path: class name}, classes file) of an embedded pool of `n`."""
  rng = np.random.default_rng(seed)
  k = len(classes)
  share = np.array([4.0] * (k - 1) + [1.0])
  y = rng.choice(k, size=n, p=share / share.sum())
  y[:k] = np.arange(k)  # every class present
  rng.shuffle(y)
  centers = rng.normal(size=(k, 16)) * 3
  feats = (centers[y] + rng.normal(size=(n, 16))).astype(np.float32)
  logits = rng.normal(size=(n, 6)).astype(np.float32)
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  # the offline dataset's pictures, one of its target classes per class here
  cfg = procedural.OfflineConfig(
      num_source_classes=4, num_target_classes=k, num_far_classes=k,
      source_train_per_class=1, source_test_per_class=1, target_train_per_class=12,
      target_test_per_class=1, far_train_per_class=1, far_test_per_class=1, seed=0)
  pics, pic_class = procedural.generate(cfg, "target", "train")
  images = os.path.join(base, "images")
  truth, paths = {}, []
  for i in range(n):
    # spaces and commas: quoting in URLs and CSV files
    rel = f"part{i % 2}/img {i:03d}" + (", copy" if i % 5 == 0 else "") + ".png"
    os.makedirs(os.path.dirname(os.path.join(images, rel)), exist_ok=True)
    pic = pics[np.flatnonzero(pic_class == y[i])[i % 12]]
    Image.fromarray(pic).resize((96, 96), Image.BICUBIC).save(
        os.path.join(images, rel))
    truth[rel] = classes[y[i]]
    paths.append(rel)
  wd = os.path.join(base, "wd")
  os.makedirs(wd)
  with open(os.path.join(wd, "paths.txt"), "w") as f:
    f.write("\n".join(paths) + "\n")
  np.savez(os.path.join(wd, "embedding.npz"), index=np.arange(n), features=feats,
           probs=probs.astype(np.float32), target_features=feats)
  source = os.path.join(base, "source")  # only its class names are read
  os.makedirs(source)
  with open(os.path.join(source, "classes.txt"), "w") as f:
    f.write("\n".join(SOURCE_NAMES) + "\n")
  embed = {"images": images, "tfds": False, "source": source,
           "source_digest": "x", "ensemble": False, "image_size": 24, "chunk": 16,
           "data_dir": None, "paths_digest": "x"}
  with open(os.path.join(wd, "workdir.json"), "w") as f:
    json.dump({"embed": embed}, f)
  classes_file = os.path.join(base, "classes.txt")
  with open(classes_file, "w") as f:
    f.write("\n".join(classes) + "\n")
  return wd, truth, classes_file


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def env():
  return subprocess_env(JAX_PLATFORMS="cpu")


class Server:
  """`jaxal label ARGS` in a subprocess, on a free port, until stopped."""

  def __init__(self, *args, host="127.0.0.1", token=None):
    self.port = free_port()
    self.host = host
    self.token = token
    cmd = [sys.executable, "-m", "jaxal", "label", f"--port={self.port}",
           f"--host={host}", *args] + ([f"--token={token}"] if token else [])
    self.proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    self.url = f"http://127.0.0.1:{self.port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
      if self.proc.poll() is not None:
        raise AssertionError(f"jaxal label exited: {self.proc.stdout.read()[-3000:]}")
      try:
        self.request("GET", "api/state")
        return
      except (urllib.error.URLError, ConnectionError):
        time.sleep(0.2)
    self.stop()
    raise AssertionError("jaxal label did not start within 120 s")

  def request(self, method, path, body=None, headers=None, token=True):
    """(status, parsed JSON or bytes) of one request."""
    h = {"X-Jaxal": "1", "Content-Type": "application/json"}
    if self.token and token:
      h["X-Jaxal-Token"] = self.token
    h.update(headers or {})
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
    try:
      with urllib.request.urlopen(req, timeout=60) as r:
        status, raw, kind = r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
      status, raw, kind = e.code, e.read(), e.headers.get("content-type", "")
    return status, (json.loads(raw) if kind.startswith("application/json") else raw)

  def kill(self):
    self.proc.kill()
    self.proc.wait(30)

  def stop(self):
    if self.proc.poll() is None:
      self.proc.terminate()
      try:
        self.proc.wait(30)
      except subprocess.TimeoutExpired:
        self.kill()
    return self.proc.stdout.read()


def answer_next(srv, truth, name, wait=5):
  """`name` asks for their next image over HTTP and answers it truthfully;
  returns the image ({"path", "rank", ...}), or None when none was handed out."""
  status, r = srv.request("POST", "api/next", {"annotator": name, "wait": wait})
  assert status == 200, r
  if "image" not in r:
    return None
  path = r["image"]["path"]
  status, a = srv.request("POST", "api/answer",
                          {"annotator": name, "path": path, "label": truth[path]})
  assert status == 200 and a["saved"], a
  return r["image"]


def new_page(browser):
  """(a Chromium page of the labeling tests' size, the list its script errors
  land in)."""
  page = browser.new_page(viewport={"width": 1200, "height": 800})
  errors = []
  page.on("pageerror", lambda e: errors.append(str(e)))
  return page, errors

"""The image folder the embed benchmarks read (bench/embed.py, bench/vit_embed.py):
photograph-like JPEGs of odd sizes, as a camera or a web crawl gives them."""

import os

import numpy as np
from PIL import Image


def make_folder(root: str, n: int) -> None:
  """n JPEGs of 333-500 px a side (gradients + noise) in 4 subfolders, seeded."""
  rng = np.random.default_rng(0)
  for i in range(n):
    h, w = int(rng.integers(333, 501)), int(rng.integers(333, 501))
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) * 127 // (w + h))], -1)
    img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    os.makedirs(os.path.join(root, f"d{i % 4}"), exist_ok=True)
    Image.fromarray(img).save(os.path.join(root, f"d{i % 4}", f"{i:05d}.jpg"),
                              quality=90)

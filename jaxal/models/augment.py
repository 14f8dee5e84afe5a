"""SimCLR's image augmentations as jitted array functions, one key per example.

Chen et al. 2020 (SimCLR, section 3 and appendix A) compose, for each view of
each image: a random resized crop (with a left-right flip), a colour distortion
(colour jitter applied with probability 0.8, then grey-scale with probability
0.2) and, for ImageNet only, a Gaussian blur. Their CIFAR-10 recipe (appendix
B.9) drops the blur and uses colour strength s = 0.5, that is brightness,
contrast and saturation 0.8 s = 0.4 and hue 0.2 s = 0.1: the
`ColorJitter(0.4, 0.4, 0.4, 0.1)` that the SCAN pretext code (which TypiClust's
code reuses for its SimCLR features) also applies.

What is stated [S], confirmed in code [C] and reconstructed [R]:

- [S] crop area fraction uniform in `scale`, aspect ratio log-uniform in
  (3/4, 4/3), resized back to the input size; flip with probability 0.5.
  SimCLR's area range is (0.08, 1); SCAN's CIFAR config uses (0.2, 1), our
  default, since 32 px crops of 8% of an image are 9 px wide.
- [C] torchvision (which SCAN uses) draws up to 10 crops and falls back to the
  centre crop of the whole image when none fits; [R] here the width and height
  are clipped to the image instead (one draw, no rejection loop: a jitted
  function has no data-dependent loop). The resize is bilinear with half-pixel
  centres (PIL's and torchvision's convention), without anti-aliasing, which
  only matters when a crop is shrunk (never, for crops of the input size).
- [C] the four jitter operations in a random order per image, each factor
  uniform in [max(0, 1 - v), 1 + v] (hue: a shift uniform in [-v, v] of a
  turn), as torchvision's `ColorJitter`: brightness scales the pixels,
  contrast blends with the mean grey level, saturation with the grey image,
  hue rotates in HSV space; values are clipped to [0, 1] after each one.
- [C] grey-scale with ITU-R 601 luma weights (0.299, 0.587, 0.114), as
  torchvision.

Everything works on float32 images in [0, 1]; `views` takes uint8 [B, H, W, 3]
and returns the pair of augmented batches normalised as `jaxal.datasets.pipeline`
normalises (ImageNet mean and std), so a model trained on them reads pools the
way `jaxal embed` and the experiments feed them.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxal.datasets import pipeline
from jaxal.errors import InputError

_LUMA = (0.299, 0.587, 0.114)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """The ranges of SimCLR's augmentations (module docstring; CIFAR recipe)."""
  scale: tuple = (0.2, 1.0)  # crop area fraction
  ratio: tuple = (3 / 4, 4 / 3)  # crop aspect ratio (log-uniform)
  flip: float = 0.5
  jitter: float = 0.8  # probability of the colour jitter
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.4
  hue: float = 0.1
  grayscale: float = 0.2  # probability

  def validate(self) -> "AugmentConfig":
    """Checks every range; returns self or raises ValueError naming the field."""
    lo, hi = self.scale
    if not 0 < lo <= hi <= 1:
      raise InputError(f"scale must satisfy 0 < low <= high <= 1, got {self.scale}.")
    lo, hi = self.ratio
    if not 0 < lo <= hi:
      raise InputError(f"ratio must satisfy 0 < low <= high, got {self.ratio}.")
    for name in ("flip", "jitter", "grayscale"):
      if not 0 <= getattr(self, name) <= 1:
        raise InputError(f"{name} is a probability in [0, 1], got "
                         f"{getattr(self, name)}.")
    for name in ("brightness", "contrast", "saturation"):
      if getattr(self, name) < 0:
        raise InputError(f"{name} must be >= 0, got {getattr(self, name)}.")
    if not 0 <= self.hue <= 0.5:
      raise InputError(f"hue must be in [0, 0.5], got {self.hue}.")
    return self


def crop_box(key, height: int, width: int, scale, ratio):
  """(top, left, crop height, crop width) of one random resized crop, floats."""
  k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
  area = height * width * jax.random.uniform(k_area, (), minval=scale[0],
                                             maxval=scale[1])
  log_r = jax.random.uniform(k_ratio, (), minval=math.log(ratio[0]),
                             maxval=math.log(ratio[1]))
  r = jnp.exp(log_r)
  ch = jnp.clip(jnp.sqrt(area / r), 1.0, height)
  cw = jnp.clip(jnp.sqrt(area * r), 1.0, width)
  top = jax.random.uniform(k_y, ()) * (height - ch)
  left = jax.random.uniform(k_x, ()) * (width - cw)
  return top, left, ch, cw


def resized_crop(image, top, left, ch, cw, flip):
  """Bilinear resize of the crop [top, top + ch) x [left, left + cw) of `image`
  [H, W, C] back to [H, W, C] (half-pixel centres, edges clamped), mirrored
  left-right when `flip`."""
  h, w, _ = image.shape
  ys = top + (jnp.arange(h, dtype=jnp.float32) + 0.5) * (ch / h) - 0.5
  xs = left + (jnp.arange(w, dtype=jnp.float32) + 0.5) * (cw / w) - 0.5
  xs = jnp.where(flip, xs[::-1], xs)
  ys, xs = jnp.clip(ys, 0, h - 1), jnp.clip(xs, 0, w - 1)
  y0, x0 = jnp.floor(ys).astype(jnp.int32), jnp.floor(xs).astype(jnp.int32)
  y1, x1 = jnp.minimum(y0 + 1, h - 1), jnp.minimum(x0 + 1, w - 1)
  wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
  rows0, rows1 = image[y0], image[y1]  # [H, W, C] each
  top_row = rows0[:, x0] * (1 - wx) + rows0[:, x1] * wx
  bottom_row = rows1[:, x0] * (1 - wx) + rows1[:, x1] * wx
  return top_row * (1 - wy) + bottom_row * wy


def grey(image):
  """[..., 3] -> [..., 1]: ITU-R 601 luma."""
  return image @ jnp.asarray(_LUMA, image.dtype)[:, None]


def _blend(a, b, factor):
  return jnp.clip(factor * a + (1 - factor) * b, 0.0, 1.0)


def adjust_brightness(image, factor):
  """Pixels times `factor`, clipped to [0, 1]."""
  return jnp.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image, factor):
  """Blend with the image's mean grey level."""
  return _blend(image, jnp.mean(grey(image)), factor)


def adjust_saturation(image, factor):
  """Blend with the grey image."""
  return _blend(image, grey(image), factor)


def rgb_to_hsv(image):
  """[..., 3] RGB in [0, 1] -> HSV, hue in [0, 1).

  The hue's sector is the channel of the maximum by `argmax` (red before green
  before blue on ties, torchvision's precedence), not by testing `max == r`:
  under jit XLA may compute a fused channel twice with different roundings,
  and an equality test then picks a wrong sector (a hue error of up to 1/3).
  """
  r, g, b = image[..., 0], image[..., 1], image[..., 2]
  top = jnp.argmax(image, -1)
  maxc, minc = jnp.max(image, -1), jnp.min(image, -1)
  delta = maxc - minc
  s = jnp.where(maxc > 0, delta / jnp.where(maxc > 0, maxc, 1.0), 0.0)
  safe = jnp.where(delta > 0, delta, 1.0)
  h = jnp.select([top == 0, top == 1], [(g - b) / safe, 2.0 + (b - r) / safe],
                 4.0 + (r - g) / safe)
  h = jnp.where(delta > 0, (h / 6.0) % 1.0, 0.0)
  return jnp.stack([h, s, maxc], -1)


def hsv_to_rgb(hsv):
  """Inverse of `rgb_to_hsv`."""
  h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  i = jnp.floor(h * 6.0)
  f = h * 6.0 - i
  p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
  i = i.astype(jnp.int32) % 6
  choose = lambda *c: jnp.select([i == k for k in range(6)], c)  # noqa: E731
  return jnp.stack([choose(v, q, p, p, t, v), choose(t, v, v, q, p, p),
                    choose(p, p, t, v, v, q)], -1)


def adjust_hue(image, shift):
  """Rotates the hue by `shift` of a turn (in [-0.5, 0.5])."""
  hsv = rgb_to_hsv(image)
  hsv = hsv.at[..., 0].set((hsv[..., 0] + shift) % 1.0)
  return jnp.clip(hsv_to_rgb(hsv), 0.0, 1.0)


def color_jitter(key, image, config: AugmentConfig):
  """torchvision's ColorJitter: the four operations in a random order.

  The four positions are a loop over one `switch`, not four switches written
  out: under `vmap` (one key per example) a switch computes every branch and
  selects, so written out the program held the four operations at each of the
  four positions (the hue's HSV round trip four times). In a loop they are
  compiled once: `views` on 16 images of 16 px compiled in 2.2 s instead of
  3.2 (60% of a SimCLR train step's compilation was the views), the same
  values bit for bit and the same time per batch (Intel Xeon family 6 model
  167, jaxlib 0.10.2).
  """
  k_order, k_b, k_c, k_s, k_h = jax.random.split(key, 5)

  def factor(k, v):
    return jax.random.uniform(k, (), minval=max(0.0, 1 - v), maxval=1 + v)

  fb, fc, fs = (factor(k_b, config.brightness), factor(k_c, config.contrast),
                factor(k_s, config.saturation))
  fh = jax.random.uniform(k_h, (), minval=-config.hue, maxval=config.hue)
  ops = (lambda x: adjust_brightness(x, fb), lambda x: adjust_contrast(x, fc),
         lambda x: adjust_saturation(x, fs), lambda x: adjust_hue(x, fh))
  order = jax.random.permutation(k_order, 4)
  return jax.lax.fori_loop(0, 4, lambda i, x: jax.lax.switch(order[i], ops, x), image)


def augment(key, image, config: AugmentConfig = AugmentConfig()):
  """One SimCLR view of `image` [H, W, 3] float32 in [0, 1]."""
  k_crop, k_flip, k_jit, k_pj, k_grey = jax.random.split(key, 5)
  h, w, _ = image.shape
  top, left, ch, cw = crop_box(k_crop, h, w, config.scale, config.ratio)
  flip = jax.random.uniform(k_flip) < config.flip
  x = resized_crop(image, top, left, ch, cw, flip)
  x = jnp.where(jax.random.uniform(k_pj) < config.jitter,
                color_jitter(k_jit, x, config), x)
  return jnp.where(jax.random.uniform(k_grey) < config.grayscale,
                   jnp.broadcast_to(grey(x), x.shape), x)


def example_keys(key, first: int, count: int):
  """Keys of examples `first` .. `first + count - 1` of a global batch: the
  same example gets the same key whatever the number of devices."""
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(
      first + jnp.arange(count, dtype=jnp.uint32))


def views(key, images, first: int = 0, config: AugmentConfig = AugmentConfig()):
  """Two normalised SimCLR views of uint8 `images` [B, H, W, 3].

  Example `first + i` of the global batch draws its views from
  `fold_in(key, first + i)`, split in two: deterministic per (key, example).
  Returns `(view1, view2)`, each float32 [B, H, W, 3].
  """
  x = jnp.asarray(images, jnp.float32) / 255.0
  keys = example_keys(key, first, x.shape[0])
  pairs = jax.vmap(lambda k: jax.random.split(k, 2))(keys)
  one = jax.vmap(lambda k, im: augment(k, im, config))
  mean = jnp.asarray(pipeline.MEAN / 255.0)
  std = jnp.asarray(pipeline.STD / 255.0)
  return ((one(pairs[:, 0], x) - mean) / std, (one(pairs[:, 1], x) - mean) / std)

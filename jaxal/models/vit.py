"""Vision Transformers for the foundation encoders: DINOv2 (with and without
registers) and SigLIP / SigLIP 2's image and text towers, as one Flax module
each, variants as configuration (as `resnet` holds ResNet-18 and -50).

The paper selects from the features of a source model M_S (main paper section
3; method guide §1): here M_S may be a frozen foundation encoder, whose features
the acquisition functions, the balancing step and the SVM target read as they
read the ResNet's. The shape follows big_vision's `models/vit.py`: a patch
embedding (a convolution of stride = kernel = patch), learned position
embeddings, pre-LayerNorm encoder blocks, a final LayerNorm, then pooling::

    DINOv2    a class token (+ `registers` register tokens after it, which get
              no position embedding), LayerScale on both branches, a GELU or
              SwiGLU MLP; pooled = the class token after the final norm, or
              `pool="cls_mean"`: [class token, mean of the patch tokens]
              (DINOv2's linear evaluation, registers excluded).
    SigLIP    no class token, GELU (tanh) MLP, pooled by a multihead-attention
              "MAP" head: one learned probe attends over every token, then a
              LayerNorm'd MLP residual.
    text      SigLIP's text tower: token + position embeddings, the same
              blocks with no attention mask, a final norm, the LAST token's
              state projected by a Dense head (`TextTransformer`).

Hugging Face transformers 5.23 defines the references (`Dinov2Model`,
`Dinov2WithRegistersModel`, `SiglipModel`); `jaxal.models.hf_vit` loads their
checkpoints into these modules and tests/models/test_vit.py compares every
block's output with theirs. Position embeddings are resized to the image's
patch grid with PyTorch's bicubic interpolation as those models call it
(`interpolate_pos_encoding`, computed here as two small matrices):
`torch.nn.functional.interpolate(..., mode="bicubic", align_corners=False)`,
Keys' cubic with a = -0.75 and clamped borders for DINOv2 and SigLIP, and its
`antialias=True` form (a = -0.5, PIL-style normalised taps, the support
widened when shrinking) for DINOv2 with registers.

`apply(variables, images)` takes NHWC float32 images normalised as the
checkpoint's processor does (`jaxal.datasets.images`) and returns
`(logits, features)` as the ResNet does, the logits of shape [N, 0] (an
encoder has no class head), so `jaxal.models.inference` runs it unchanged;
`method=VisionTransformer.encode` gives every block's output too.
`dtype=jnp.bfloat16` computes in bfloat16 with float32 parameters, LayerNorm
statistics and softmax.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxal.errors import InputError

MLPS = ("gelu", "gelu_tanh", "swiglu")
POOLS = ("cls", "cls_mean", "map")
INTERPOLATIONS = ("bicubic", "bicubic_antialias")


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """One vision tower's sizes (read from a checkpoint's config.json by
  `jaxal.models.hf_vit`).

  Attributes:
    hidden: token width D.
    layers: encoder blocks.
    heads: attention heads (D divisible by it).
    mlp: the MLP's hidden width (SwiGLU: of each of its two input branches).
    patch: patch side in pixels.
    image_size: the side the position embeddings were trained at.
    channels: input channels.
    class_token: a class token first (DINOv2) or none (SigLIP).
    registers: register tokens after the class token (DINOv2 with registers).
    layerscale: a learned per-channel scale on both residual branches.
    mlp_kind: "gelu" (erf), "gelu_tanh" (tanh approximation) or "swiglu".
    eps: LayerNorm epsilon.
    qkv_bias: biases on the query, key and value projections.
    pool: "cls", "cls_mean" or "map" (see the module docstring).
    interpolation: "bicubic" or "bicubic_antialias", for position embeddings
      at a patch grid other than the trained one.
  """
  hidden: int
  layers: int
  heads: int
  mlp: int
  patch: int
  image_size: int
  channels: int = 3
  class_token: bool = True
  registers: int = 0
  layerscale: bool = True
  mlp_kind: str = "gelu"
  eps: float = 1e-6
  qkv_bias: bool = True
  pool: str = "cls"
  interpolation: str = "bicubic"

  def __post_init__(self):
    for name in ("hidden", "layers", "heads", "mlp", "patch", "image_size",
                 "channels"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise InputError(f"ViTConfig.{name} must be a positive int, got {v!r}.")
    if self.hidden % self.heads:
      raise InputError(f"ViTConfig.hidden ({self.hidden}) must be divisible by "
                       f"heads ({self.heads}).")
    if self.image_size < self.patch:
      raise InputError(f"ViTConfig.image_size ({self.image_size}) is smaller than "
                       f"the patch ({self.patch}).")
    if not isinstance(self.registers, (int, np.integer)) or self.registers < 0:
      raise InputError(f"ViTConfig.registers must be an int >= 0, got "
                       f"{self.registers!r}.")
    if self.registers and not self.class_token:
      raise InputError("ViTConfig.registers need a class token (DINOv2's layout).")
    if self.mlp_kind not in MLPS:
      raise InputError(f"ViTConfig.mlp_kind must be one of {MLPS}, got "
                       f"{self.mlp_kind!r}.")
    if self.pool not in POOLS:
      raise InputError(f"ViTConfig.pool must be one of {POOLS}, got {self.pool!r}.")
    if self.pool != "map" and not self.class_token:
      raise InputError(f"ViTConfig.pool={self.pool!r} needs a class token.")
    if self.interpolation not in INTERPOLATIONS:
      raise InputError(f"ViTConfig.interpolation must be one of {INTERPOLATIONS}, "
                       f"got {self.interpolation!r}.")
    if not self.eps > 0:
      raise InputError(f"ViTConfig.eps must be > 0, got {self.eps!r}.")

  @property
  def grid(self) -> int:
    """Patches per side at `image_size`."""
    return self.image_size // self.patch

  @property
  def features(self) -> int:
    """Width of the pooled features."""
    return 2 * self.hidden if self.pool == "cls_mean" else self.hidden


@dataclasses.dataclass(frozen=True)
class TextConfig:
  """SigLIP's text tower: `vocab` tokens, sequences of `max_length`, blocks as
  the vision tower's (no LayerScale, GELU tanh), a head to `projection`."""
  vocab: int
  max_length: int
  hidden: int
  layers: int
  heads: int
  mlp: int
  projection: int
  eps: float = 1e-6
  mlp_kind: str = "gelu_tanh"

  def __post_init__(self):
    for name in ("vocab", "max_length", "hidden", "layers", "heads", "mlp",
                 "projection"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise InputError(f"TextConfig.{name} must be a positive int, got {v!r}.")
    if self.hidden % self.heads:
      raise InputError(f"TextConfig.hidden ({self.hidden}) must be divisible by "
                       f"heads ({self.heads}).")
    if self.mlp_kind not in MLPS:
      raise InputError(f"TextConfig.mlp_kind must be one of {MLPS}, got "
                       f"{self.mlp_kind!r}.")


# ------------------------------------------------------------ interpolation
def _cubic(x: np.ndarray, a: float) -> np.ndarray:
  """Keys' cubic convolution kernel with parameter `a`, at distances x."""
  x = np.abs(x)
  return np.where(x <= 1.0, ((a + 2) * x - (a + 3)) * x * x + 1,
                  np.where(x < 2.0, a * (((x - 5) * x + 8) * x - 4), 0.0))


def resize_matrix(size_in: int, size_out: int, antialias: bool) -> np.ndarray:
  """[size_out, size_in] float64 weights of PyTorch's 1-D bicubic resize with
  `align_corners=False` and an output size (not a scale factor): row i holds
  the taps of output i.

  antialias=False (ATen's `upsample_bicubic2d`): source x = (i + 0.5) *
  in / out - 0.5, the four taps floor(x) - 1 .. floor(x) + 2 weighted by Keys'
  cubic (a = -0.75), indices clamped to the border (a clamped tap adds to the
  border row). antialias=True (`_upsample_bicubic2d_aa`, as Pillow): centre
  c = (i + 0.5) * in / out, support 2 * max(in / out, 1), taps j in
  [int(c - support + 0.5), int(c + support + 0.5)) within the input, weight
  cubic_{a=-0.5}((j - c + 0.5) / max(in / out, 1)), normalised to sum 1.
  """
  scale = size_in / size_out
  w = np.zeros((size_out, size_in), np.float64)
  if not antialias:
    for i in range(size_out):
      x = (i + 0.5) * scale - 0.5
      x0 = math.floor(x)
      t = x - x0
      taps = _cubic(np.array([t + 1.0, t, 1.0 - t, 2.0 - t]), -0.75)
      for k in range(4):
        w[i, min(max(x0 - 1 + k, 0), size_in - 1)] += taps[k]
    return w
  support = 2.0 * scale if scale >= 1.0 else 2.0
  inv = 1.0 / scale if scale >= 1.0 else 1.0
  for i in range(size_out):
    c = scale * (i + 0.5)
    lo = max(int(c - support + 0.5), 0)
    hi = min(int(c + support + 0.5), size_in)
    j = np.arange(lo, hi)
    taps = _cubic((j - c + 0.5) * inv, -0.5)
    w[i, lo:hi] = taps / taps.sum()
  return w


def interpolate_grid(pos: jax.Array, grid_in: int, grid_out: tuple[int, int],
                     antialias: bool) -> jax.Array:
  """Position embeddings [grid_in**2, D] of a square grid resized to
  `grid_out` (rows, cols), row-major, as the reference's bicubic
  `interpolate_pos_encoding`; returned unchanged at the same grid."""
  if (grid_in, grid_in) == tuple(grid_out):
    return pos
  d = pos.shape[-1]
  wh = jnp.asarray(resize_matrix(grid_in, grid_out[0], antialias), jnp.float32)
  ww = jnp.asarray(resize_matrix(grid_in, grid_out[1], antialias), jnp.float32)
  p = pos.astype(jnp.float32).reshape(grid_in, grid_in, d)
  p = jnp.einsum("hi,ijd->hjd", wh, p, precision=jax.lax.Precision.HIGHEST)
  p = jnp.einsum("wj,hjd->hwd", ww, p, precision=jax.lax.Precision.HIGHEST)
  return p.reshape(grid_out[0] * grid_out[1], d).astype(pos.dtype)


# ------------------------------------------------------------------ blocks
def _layer_norm(eps: float, name: str):
  # PyTorch's two-pass variance, computed in float32 whatever the dtype.
  return nn.LayerNorm(epsilon=eps, use_fast_variance=False, dtype=jnp.float32,
                      name=name)


class Mlp(nn.Module):
  """fc1 -> GELU -> fc2, or SwiGLU: down(silu(gate(x)) * up(x))."""
  hidden: int
  kind: str
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    dense = functools.partial(nn.Dense, dtype=self.dtype)
    out = x.shape[-1]
    if self.kind == "swiglu":
      h = nn.silu(dense(self.hidden, name="gate")(x)) * dense(self.hidden, name="up")(x)
      return dense(out, name="down")(h)
    h = dense(self.hidden, name="fc1")(x)
    h = nn.gelu(h, approximate=self.kind == "gelu_tanh")
    return dense(out, name="fc2")(h)


class Attention(nn.Module):
  """Multi-head attention, queries from `x`, keys and values from `kv`
  (default `x`); logits (q k^T) / sqrt(head width) and their softmax in
  float32."""
  heads: int
  qkv_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, kv=None):
    kv = x if kv is None else kv
    d = x.shape[-1]
    hd = d // self.heads
    proj = functools.partial(nn.DenseGeneral, features=(self.heads, hd),
                             use_bias=self.qkv_bias, dtype=self.dtype)
    q = proj(name="query")(x)
    k = proj(name="key")(kv)
    v = proj(name="value")(kv)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k,
                        preferred_element_type=jnp.float32) * (hd ** -0.5)
    w = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    y = jnp.einsum("bhqk,bkhd->bqhd", w, v)
    return nn.DenseGeneral(d, axis=(-2, -1), dtype=self.dtype, name="out")(y)


class LayerScale(nn.Module):
  """x * lambda, one learned scale per channel (DINOv2)."""

  @nn.compact
  def __call__(self, x):
    g = self.param("scale", nn.initializers.ones, (x.shape[-1],), jnp.float32)
    return x * g.astype(x.dtype)


class Block(nn.Module):
  """Pre-LayerNorm encoder block: x + LS(attn(norm1(x))), then
  x + LS(mlp(norm2(x)))."""
  heads: int
  mlp: int
  mlp_kind: str
  eps: float
  layerscale: bool
  qkv_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    y = _layer_norm(self.eps, "norm1")(x).astype(self.dtype)
    y = Attention(self.heads, self.qkv_bias, self.dtype, name="attn")(y)
    if self.layerscale:
      y = LayerScale(name="ls1")(y)
    x = x + y
    y = _layer_norm(self.eps, "norm2")(x).astype(self.dtype)
    y = Mlp(self.mlp, self.mlp_kind, self.dtype, name="mlp")(y)
    if self.layerscale:
      y = LayerScale(name="ls2")(y)
    return x + y


class MAPHead(nn.Module):
  """Multihead-attention pooling (SigLIP): a learned probe attends over the
  tokens; then probe + mlp(norm(probe)). Returns [B, D]."""
  heads: int
  mlp: int
  mlp_kind: str
  eps: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, _, d = x.shape
    probe = self.param("probe", nn.initializers.normal(1.0), (1, 1, d), jnp.float32)
    y = Attention(self.heads, True, self.dtype, name="attn")(
        jnp.broadcast_to(probe.astype(x.dtype), (b, 1, d)), x)
    z = _layer_norm(self.eps, "norm")(y).astype(self.dtype)
    y = y + Mlp(self.mlp, self.mlp_kind, self.dtype, name="mlp")(z)
    return y[:, 0]


# ------------------------------------------------------------------ towers
class VisionTransformer(nn.Module):
  """A ViT image tower (see the module docstring); `__call__` returns
  `(logits [N, 0], features [N, config.features])`."""
  config: ViTConfig
  dtype: Any = jnp.float32
  # `jaxal.models.inference` compiles it with `_xla_cpu.inference_options(...,
  # transformer=True)`: XLA's Eigen dots, 1.6x YNNPACK's on a ViT on CPU.
  transformer = True

  def setup(self):
    """The patch embedding, position embeddings, tokens, blocks, norm, head."""
    c = self.config
    self.patch_embed = nn.Conv(c.hidden, (c.patch, c.patch), strides=c.patch,
                               padding="VALID", dtype=self.dtype)
    n_pos = c.grid ** 2 + (1 if c.class_token else 0)
    self.pos_embed = self.param("pos_embed", nn.initializers.normal(0.02),
                                (n_pos, c.hidden), jnp.float32)
    if c.class_token:
      self.cls = self.param("cls", nn.initializers.zeros, (1, c.hidden), jnp.float32)
    if c.registers:
      self.reg = self.param("reg", nn.initializers.zeros, (c.registers, c.hidden),
                            jnp.float32)
    self.blocks = [Block(c.heads, c.mlp, c.mlp_kind, c.eps, c.layerscale,
                         c.qkv_bias, self.dtype, name=f"block{i}")
                   for i in range(c.layers)]
    self.norm = _layer_norm(c.eps, "norm")
    if c.pool == "map":
      self.head = MAPHead(c.heads, c.mlp, c.mlp_kind, c.eps, self.dtype)

  def embed(self, images):
    """[B, T, D] tokens before the first block: patches (+ class token,
    registers) with their position embeddings."""
    c = self.config
    x = self.patch_embed(images.astype(self.dtype))
    b, gh, gw, d = x.shape
    x = x.reshape(b, gh * gw, d).astype(jnp.float32)
    pos = self.pos_embed
    patch_pos = pos[1:] if c.class_token else pos
    patch_pos = interpolate_grid(patch_pos, c.grid, (gh, gw),
                                 c.interpolation == "bicubic_antialias")
    x = x + patch_pos[None]
    if c.class_token:
      cls = jnp.broadcast_to((self.cls + pos[:1])[None], (b, 1, d))
      parts = [cls]
      if c.registers:
        parts.append(jnp.broadcast_to(self.reg[None], (b, c.registers, d)))
      x = jnp.concatenate(parts + [x], axis=1)
    return x.astype(self.dtype)

  def encode(self, images):
    """{"hidden_states": [embeddings, block 1, ..., block L] outputs,
    "tokens": the last block's output after the final norm, "pooled"}."""
    c = self.config
    x = self.embed(images)
    states = [x]
    for blk in self.blocks:
      x = blk(x)
      states.append(x)
    tokens = self.norm(x)
    if c.pool == "map":
      pooled = self.head(tokens.astype(self.dtype))
    elif c.pool == "cls":
      pooled = tokens[:, 0]
    else:
      patches = tokens[:, 1 + c.registers:]
      pooled = jnp.concatenate([tokens[:, 0], patches.mean(axis=1)], axis=-1)
    return {"hidden_states": states, "tokens": tokens,
            "pooled": pooled.astype(jnp.float32)}

  def __call__(self, images, train: bool = False):
    del train  # a frozen encoder: no dropout, no batch statistics
    f = self.encode(images)["pooled"]
    return jnp.zeros((f.shape[0], 0), jnp.float32), f


class TextTransformer(nn.Module):
  """SigLIP's text tower: `__call__(ids [B, L])` returns the projected last
  token [B, projection]; `encode` also the hidden states."""
  config: TextConfig
  dtype: Any = jnp.float32

  def setup(self):
    """The token and position embeddings, blocks, norm and projection head."""
    c = self.config
    self.tok_embed = nn.Embed(c.vocab, c.hidden, dtype=jnp.float32)
    self.pos_embed = self.param("pos_embed", nn.initializers.normal(0.02),
                                (c.max_length, c.hidden), jnp.float32)
    self.blocks = [Block(c.heads, c.mlp, c.mlp_kind, c.eps, False, True, self.dtype,
                         name=f"block{i}") for i in range(c.layers)]
    self.norm = _layer_norm(c.eps, "norm")
    self.head = nn.Dense(c.projection, dtype=self.dtype)

  def encode(self, ids):
    """{"hidden_states", "tokens" (after the final norm), "pooled" (the last
    token projected)}."""
    ids = jnp.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] > self.config.max_length:
      raise InputError(f"ids must be [B, L] with L <= {self.config.max_length}, "
                       f"got shape {ids.shape}.")
    x = (self.tok_embed(ids) + self.pos_embed[None, :ids.shape[1]]).astype(self.dtype)
    states = [x]
    for blk in self.blocks:
      x = blk(x)
      states.append(x)
    tokens = self.norm(x)
    pooled = self.head(tokens[:, -1].astype(self.dtype)).astype(jnp.float32)
    return {"hidden_states": states, "tokens": tokens, "pooled": pooled}

  def __call__(self, ids):
    return self.encode(ids)["pooled"]


def normalize(x: jax.Array) -> jax.Array:
  """Rows divided by their L2 norm (SigLIP's image and text embeddings)."""
  x = jnp.asarray(x, jnp.float32)
  return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def logits_per_image(image_embeds, text_embeds, logit_scale, logit_bias):
  """SigLIP's image-text logits [images, texts]: cosine similarity of the
  normalised embeddings times exp(logit_scale), plus logit_bias (sigmoid of
  it: the probability that the text describes the image)."""
  sim = jnp.matmul(normalize(image_embeds), normalize(text_embeds).T,
                   precision=jax.lax.Precision.HIGHEST)
  return sim * jnp.exp(jnp.asarray(logit_scale, jnp.float32)) + jnp.asarray(
      logit_bias, jnp.float32)


def compute_dtype(name: Optional[str]):
  """jnp dtype of a compute-dtype name ("float32" or "bfloat16")."""
  table = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, None: jnp.float32}
  if name not in table:
    raise InputError(f"compute dtype must be 'float32' or 'bfloat16', got {name!r}.")
  return table[name]

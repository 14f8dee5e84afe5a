"""ResNet-18, the paper's source model M_S (supplement section 1), and ResNet-50.

A Flax linen ResNet in the layout of torchvision's (explicit symmetric padding,
BatchNorm momentum 0.1 in PyTorch's convention, no conv biases), so that at the
default width and 1000 classes it has torchvision ResNet-18's 11,689,512 trainable
parameters, and ResNet-50 (bottleneck blocks with the stride on the 3x3
convolution, torchvision's "v1.5") its 25,557,032: torchvision's and timm's
weights load into them exactly (`jaxal.models.pretrained`). `apply` returns
`(logits, features)`, features being the global-average-pooled penultimate
activations f that acquisition uses.

    model = ResNet18(num_classes=100, width=16, stem="cifar")  # CPU-sized
    variables = model.init(key, jnp.zeros((1, 32, 32, 3)), train=False)
    logits, feats = model.apply(variables, images, train=False)
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxal.models import strided_conv
from jaxal.errors import InputError

STEMS = ("imagenet", "cifar")
# torchvision initialises convolutions with kaiming_normal_(mode="fan_out").
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _pad(k: int):
  return ((k // 2, k // 2), (k // 2, k // 2))


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection (He et al. 2016)."""
  filters: int
  strides: int
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, x):
    s = (self.strides, self.strides)
    y = self.conv(self.filters, (3, 3), s, padding=_pad(3))(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters, (3, 3), padding=_pad(3))(y)
    y = self.norm()(y)
    if x.shape != y.shape:
      x = self.norm()(self.conv(self.filters, (1, 1), s, padding="VALID")(x))
    return nn.relu(x + y)


class BottleneckBlock(nn.Module):
  """1x1, 3x3 (strided) and 1x1 convolutions, 4x wider out, with a residual
  connection: torchvision's ResNet-50 block ("v1.5": the stride on the 3x3, not
  on the first 1x1 as in He et al. 2016)."""
  filters: int
  strides: int
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, x):
    s = (self.strides, self.strides)
    y = nn.relu(self.norm()(self.conv(self.filters, (1, 1), padding="VALID")(x)))
    y = self.conv(self.filters, (3, 3), s, padding=_pad(3))(y)
    y = nn.relu(self.norm()(y))
    y = self.norm()(self.conv(4 * self.filters, (1, 1), padding="VALID")(y))
    if x.shape != y.shape:
      x = self.norm()(self.conv(4 * self.filters, (1, 1), s, padding="VALID")(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet with basic (ResNet-18) or bottleneck (ResNet-50) blocks.

  Attributes:
    stage_sizes: blocks per stage ([2, 2, 2, 2] for ResNet-18, [3, 4, 6, 3] for
      ResNet-50).
    num_classes: classes of the classification head; 0: no head (an encoder,
      e.g. SimCLR's), the logits then have shape [N, 0].
    width: channels of the first stage (64 in the paper); stages use width x
      1, 2, 4, 8, so features have 8 * width dimensions (32 * width with
      bottleneck blocks, whose outputs are 4x wider).
    stem: "imagenet" (7x7/2 convolution and 3x3/2 max-pool, for 224 px) or
      "cifar" (one 3x3/1 convolution, for 32 px).
    dtype: computation dtype (e.g. jnp.bfloat16 on accelerators); parameters
      stay float32 and outputs are float32.
    bn_axis_name: mapped axis over which BatchNorm averages batch statistics
      (set by the trainer under pmap, so N devices equal one on the same batch).
    polyphase_grads: compute the input gradients of the stride-2 convolutions
      by phases on CPU (`jaxal.models.strided_conv`; same values, less work); False
      gives XLA's own gradients (for comparison).
  """
  stage_sizes: Sequence[int]
  num_classes: int
  width: int = 64
  stem: str = "imagenet"
  dtype: Any = jnp.float32
  bn_axis_name: Optional[str] = None
  polyphase_grads: bool = True
  block: Callable[..., nn.Module] = BasicBlock

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.stem not in STEMS:
      raise InputError(f"stem must be one of {STEMS}, got {self.stem!r}.")
    conv = functools.partial(
        nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=_conv_init,
        conv_general_dilated=(strided_conv.conv_general_dilated
                              if self.polyphase_grads else None))
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=0.9, epsilon=1e-5, dtype=self.dtype,
                             axis_name=self.bn_axis_name if train else None)
    x = jnp.asarray(x, self.dtype)
    if self.stem == "imagenet":
      x = conv(self.width, (7, 7), (2, 2), padding=_pad(7), name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
      x = nn.max_pool(x, (3, 3), (2, 2), padding=_pad(3))
    else:
      x = conv(self.width, (3, 3), padding=_pad(3), name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        x = self.block(self.width * 2 ** i, 2 if (i > 0 and j == 0) else 1,
                       conv=conv, norm=norm)(x)
    features = jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
    if self.num_classes == 0:  # an encoder only (self-supervised, `simclr`)
      return jnp.zeros((x.shape[0], 0), jnp.float32), features
    logits = nn.Dense(self.num_classes, name="head")(features)
    return logits, features


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2))
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block=BottleneckBlock)
ARCHS = {"resnet18": ResNet18, "resnet50": ResNet50}


def num_params(params) -> int:
  """Number of trainable parameters in a params pytree."""
  return int(sum(p.size for p in jax.tree_util.tree_leaves(params)))

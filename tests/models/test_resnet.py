"""ResNet-18 shape, parameter count and outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal.models import ResNet18, num_params


def test_parameter_count_equals_torchvision_resnet18():
  model = ResNet18(num_classes=1000)
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)), train=False))
  assert num_params(shapes["params"]) == 11_689_512


@pytest.mark.parametrize("stem,size,spatial", [("imagenet", 64, 2), ("cifar", 32, 4)])
def test_outputs(stem, size, spatial):
  model = ResNet18(num_classes=7, width=4, stem=stem)
  x = jnp.ones((2, size, size, 3))
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  logits, feats = model.apply(variables, x, train=False)
  assert logits.shape == (2, 7) and feats.shape == (2, 32)  # 8 * width
  assert feats.dtype == jnp.float32 and bool(jnp.all(feats >= 0))  # pooled ReLU
  # the last stage's feature maps (8 x width channels) before the pooling:
  # the stem and three stride-2 stages divide the image by 8 (cifar) or 32
  _, state = model.apply(variables, x, train=False, capture_intermediates=True,
                         mutable=["intermediates"])
  maps = [v.shape for v in jax.tree_util.tree_leaves(state["intermediates"])
          if v.ndim == 4 and v.shape[-1] == 32]
  assert maps and set(maps) == {(2, spatial, spatial, 32)}, maps


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  model = ResNet18(num_classes=3, width=4, stem="cifar", dtype=jnp.bfloat16)
  x = jnp.ones((2, 16, 16, 3))
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(variables))
  logits, feats = model.apply(variables, x, train=False)
  assert logits.dtype == jnp.float32 and feats.dtype == jnp.float32
  _, f32 = ResNet18(num_classes=3, width=4, stem="cifar").apply(variables, x)
  err = float(jnp.max(jnp.abs(feats - f32)))
  scale = float(jnp.max(jnp.abs(f32)))
  # bfloat16 keeps an 8-bit significand (unit roundoff u = 2^-8 ~ 0.0039), and
  # the rounding of each of the 17 convolutions on the longest path (each with
  # its BatchNorm) adds up on the way to the features. Measured on 12 initialisation seeds x (this input, a normal
  # one), max |bf16 - f32| / max |f32| lies in [0.0025, 0.017] (0.0025 here,
  # max |f32| = 16.6): c = 0.05 (~13 u) leaves 3x the worst seen.
  assert err <= 0.05 * scale, (err, scale)
  # And bfloat16 was really used: computed in float32 the two could differ by
  # float32 roundoff only (2^-24 per operation), far below 1e-4 of the scale,
  # while rounding the input to bfloat16 alone moves the features by ~u / 2.
  assert not np.array_equal(feats, f32) and err >= 1e-4 * scale, (err, scale)


def test_bad_stem():
  with pytest.raises(ValueError, match="stem must be one of"):
    ResNet18(num_classes=2, stem="tiny").init(jax.random.PRNGKey(0),
                                              jnp.ones((1, 8, 8, 3)))

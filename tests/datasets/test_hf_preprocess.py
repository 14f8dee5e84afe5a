"""Hugging Face DINOv2 / SigLIP preprocessing against transformers' processors.

tests/data/vit/preprocess.npz (written by tests/data/make_vit_preprocess.py with
transformers 5.23; no torch here) holds, per case, the pixel_values of the
PIL-backend processor (`BitImageProcessorPil`, `SiglipImageProcessorPil`) and of
`AutoImageProcessor`'s default (the torchvision-backend one) on seeded odd-size
images. jaxal's transform, built by `preprocess_from_hf` from the same config and
run through the functions `jaxal embed` calls, must equal the first to within
`TOL` and stays within the measured distance of the second.
"""

import dataclasses
import hashlib
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from jaxal.datasets import images

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "data")
sys.path.insert(0, DATA)
import pretrained_fixture as fx  # noqa: E402

GOLDEN = os.path.join(DATA, "vit", "preprocess.npz")
# jaxal runs the reference's own operations (the same Pillow resize and crop,
# float64 rescale cast to float32, float32 (x - mean) / std, each correctly
# rounded), so the values are equal bit for bit here. The tolerance admits a few
# float32 ulps (2.4e-7 at |x| < 4) should a platform round differently, while one
# grey level is worth rescale / std >= 0.0039 in these cases: 1e-6 cannot hide a
# pixel that differs.
TOL = 1e-6


def _load():
  with np.load(GOLDEN) as z:
    return {k: z[k] for k in z.files}


GOLD = _load()
META = json.loads(str(GOLD["meta"]))
CASES = META["cases"]
PADDED = {"dino_pad", "dino_noresize"}  # crops larger than the image


def case_image(height: int, width: int, mode: str) -> Image.Image:
  """As make_vit_preprocess.case_image (RGB, its greyscale, or with an alpha
  ramp 0..255 from left to right)."""
  rgb = fx.image(height, width)
  if mode == "RGB":
    return Image.fromarray(rgb)
  if mode == "L":
    return Image.fromarray(rgb).convert("L")
  alpha = np.round(np.arange(width) * 255.0 / (width - 1)).astype(np.uint8)
  return Image.fromarray(np.dstack([rgb, np.broadcast_to(alpha, (height, width))]))


def prep_of(case: dict) -> images.Preprocess:
  return images.preprocess_from_hf(
      META["configs"][case["config"]],
      source=f"{case['config']}/preprocessor_config.json")


def want(i: int, kind: str = "pil") -> np.ndarray:
  """pixel_values of case i, as HWC."""
  return GOLD[f"{i}/{kind}"].transpose(1, 2, 0)


@pytest.mark.parametrize("i", range(len(CASES)))
def test_equals_the_pil_processor(i):
  case = CASES[i]
  img = case_image(case["height"], case["width"], case["mode"])
  assert hashlib.sha256(img.mode.encode() + np.asarray(img).tobytes()).hexdigest() \
      == case["sha256"], "the fixture's image changed: rerun make_vit_preprocess.py"
  prep = prep_of(case)
  got = prep.pixel_values(img)
  assert got.dtype == np.float32 and got.shape == want(i).shape
  assert prep.output_size == got.shape[0] == got.shape[1]
  np.testing.assert_allclose(got, want(i), rtol=0, atol=TOL)


def test_embed_path_reads_files_the_same(tmp_path):
  """`load_batch` (decode, convert, resize, crop) then `normalizer`, as `jaxal
  embed` runs them, on the cases written as PNG files."""
  for i, case in enumerate(CASES):
    img = case_image(case["height"], case["width"], case["mode"])
    img.save(tmp_path / f"{i}.png")
    prep = prep_of(case)
    batch, ok, errors = images.load_batch(str(tmp_path), [f"{i}.png"],
                                          prep.output_size, preprocess=prep)
    assert ok.all() and not errors and batch.dtype == np.uint8
    got = images.normalizer(prep)(batch)[0]
    np.testing.assert_allclose(got, want(i), rtol=0, atol=TOL, err_msg=str(case))


def test_within_the_measured_distance_of_the_torchvision_processor():
  """AutoImageProcessor's default (the torchvision backend) resizes with its own
  tensor kernels: a few grey levels from Pillow's (at most 4 here, SigLIP at
  224), 0 where nothing is resampled. Where a crop is larger than the image it
  also pads by `(crop - side) // 2` before the image instead of the numpy
  crop's `ceil`, shifting the image by a pixel: those cases differ wholesale."""
  assert set(META["auto_classes"].values()) == {"BitImageProcessor",
                                                "SiglipImageProcessor"}
  assert set(META["pil_classes"].values()) == {"BitImageProcessorPil",
                                               "SiglipImageProcessorPil"}
  worst = 0
  for i, case in enumerate(CASES):
    prep = prep_of(case)
    img = case_image(case["height"], case["width"], case["mode"])
    got = prep.pixel_values(img)
    diff = np.abs(got - want(i, "auto")).reshape(-1, 3).max(0)  # per channel
    m = META["measured"][str(i)]
    assert diff.max() <= m["max_abs"] + TOL, (case, diff, m)
    if case["config"] not in PADDED:  # in grey levels
      levels = np.round(diff * np.asarray(prep.std) / prep.rescale_factor).max()
      assert levels == m["max_levels"] <= 4, (case, levels, m)
      worst = max(worst, m["max_levels"])
  assert worst == 4


def test_the_conventions_matter():
  """Negative controls: torchvision's rounding of the crop offset and jaxal's own
  alpha handling give other values."""
  i = next(i for i, c in enumerate(CASES) if c["config"] == "dino_small"
           and (c["height"], c["width"], c["mode"]) == (37, 53, "RGB"))
  prep = prep_of(CASES[i])
  img = case_image(37, 53, "RGB")
  other = dataclasses.replace(prep, rounding="round")
  assert np.abs(other.pixel_values(img) - want(i)).max() > 0.01
  j = next(i for i, c in enumerate(CASES) if c["mode"] == "RGBA")
  prep = prep_of(CASES[j])
  rgba = case_image(CASES[j]["height"], CASES[j]["width"], "RGBA")
  assert np.abs(dataclasses.replace(prep, alpha="drop").pixel_values(rgba)
                - want(j)).max() > 0.5
  # transformers' float64 x * 0.00392156862745098 cast to float32 and
  # torchvision's float32 x / 255 happen to agree on all 256 levels (jaxal runs
  # each source's own all the same: other factors need not agree)
  u = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(
      (u.astype(np.float64) * 0.00392156862745098).astype(np.float32),
      u.astype(np.float32) / np.float32(255))


def test_resize_sizes_are_transformers():
  """`resized_size` against transformers' `get_resize_output_image_size(
  default_to_square=False)`: the longer side truncated, not rounded (256 * 300
  / 199 = 385.9 gives 385), both orientations, images already at size."""
  rows = META["resize_sizes"]
  assert len(rows) >= 80
  assert [300, 199, 256, 385, 256] in rows
  for h, w, s, oh, ow in rows:
    p = images.Preprocess(resize=s, crop=1, rounding="floor")
    assert p.resized_size(h, w) == (oh, ow), (h, w, s)


def test_class_defaults_are_transformers():
  """What an absent key means: the PIL classes' defaults in transformers 5.23."""
  for base, ref in META["class_defaults"].items():
    mine = images.HF_PROCESSOR_DEFAULTS[base]
    assert set(mine) == set(ref), base
    for k, v in ref.items():
      m = mine[k]
      m = list(m) if isinstance(m, tuple) else m
      if isinstance(v, float):
        assert m == pytest.approx(v, rel=1e-15), (base, k)
      else:
        assert m == v, (base, k)


DINOV2 = {"crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
          "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
          "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
          "image_processor_type": "BitImageProcessor",
          "image_std": [0.229, 0.224, 0.225], "resample": 3,
          "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 256}}
SIGLIP = {"do_normalize": True, "do_rescale": True, "do_resize": True,
          "image_mean": [0.5, 0.5, 0.5],
          "image_processor_type": "SiglipImageProcessor",
          "image_std": [0.5, 0.5, 0.5], "processor_class": "SiglipProcessor",
          "resample": 3, "rescale_factor": 0.00392156862745098,
          "size": {"height": 224, "width": 224}}


def test_json_form_and_round_trip():
  dino = images.preprocess_from_hf(DINOV2, source="dinov2")
  assert dino.to_json() == {
      "resize": 256, "crop": 224, "interpolation": "bicubic",
      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
      "rounding": "floor", "rescale_factor": 0.00392156862745098, "alpha": "white"}
  sig = images.preprocess_from_hf(SIGLIP, source="siglip")
  assert sig.to_json() == {
      "resize": None, "crop": None, "interpolation": "bicubic",
      "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize_to": 224,
      "rounding": "floor", "rescale_factor": 0.00392156862745098, "alpha": "white"}
  assert dino.output_size == sig.output_size == 224
  for p in (dino, sig):
    back = images.Preprocess.from_json(json.loads(json.dumps(p.to_json())))
    assert back == p and back.to_json() == p.to_json()


def test_old_json_still_loads_and_is_written_the_same():
  """A torchvision source's transform as earlier versions recorded it (in the
  source's config and in embed's settings, which a resumed embed compares)."""
  old = {"resize": 232, "crop": 224, "interpolation": "bilinear",
         "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
  p = images.Preprocess.from_json(json.loads(json.dumps(old)))
  assert (p.resize, p.crop, p.resize_to, p.rounding, p.rescale_factor, p.alpha) \
      == (232, 224, None, "round", None, "drop")
  assert p.to_json() == old and list(p.to_json()) == list(old)
  assert p == images.Preprocess(232, 224)
  with pytest.raises(ValueError, match="unknown field"):
    images.Preprocess.from_json({**old, "shear": 1})


def test_preprocess_refuses_bad_new_fields():
  for kw, word in ((dict(resize=10, resize_to=10, crop=8), "not both"),
                   (dict(resize=10), "output size must be fixed"),
                   (dict(resize_to=10, rounding="ceil"), "rounding"),
                   (dict(resize_to=10, alpha="black"), "alpha"),
                   (dict(resize_to=10, rescale_factor=0.0), "rescale_factor"),
                   (dict(resize_to=10, rescale_factor=True), "rescale_factor"),
                   (dict(resize_to=10, crop=12), "resize >= crop"),
                   (dict(resize_to=0), "resize_to"),
                   (dict(resize=10.5, crop=8), "resize")):
    with pytest.raises(ValueError, match=word):
      images.Preprocess(**kw)
  # transformers' crop pads an image smaller than the crop: allowed with floor
  assert images.Preprocess(resize=25, crop=28, rounding="floor").output_size == 28
  assert images.Preprocess(crop=32, rounding="floor").resized_size(21, 41) == (21, 41)


def _without(d, *keys):
  return {k: v for k, v in d.items() if k not in keys}


@pytest.mark.parametrize("config,words", [
    ({**DINOV2, "image_processor_type": "ViTImageProcessor"},
     ["image_processor_type", "ViTImageProcessor", "BitImageProcessor"]),
    (_without(DINOV2, "image_processor_type"), ["image_processor_type"]),
    ({**SIGLIP, "image_processor_type": "Siglip2ImageProcessor",
      "max_num_patches": 256, "patch_size": 16}, ["NaFlex", "not supported"]),
    ({**SIGLIP, "image_processor_type": "Siglip2ImageProcessorFast"}, ["NaFlex"]),
    ({**SIGLIP, "max_num_patches": 256}, ["NaFlex", "max_num_patches"]),
    ({**SIGLIP, "do_pad": True}, ["do_pad"]),
    ({**SIGLIP, "do_resize": False}, ["do_resize", "do_center_crop"]),
    ({**SIGLIP, "do_resize": None}, ["do_resize"]),
    ({**DINOV2, "do_center_crop": False}, ["do_center_crop", "shortest_edge"]),
    ({**DINOV2, "do_center_crop": None}, ["do_center_crop"]),
    ({**DINOV2, "image_mean": [0.5, 0.5]}, ["image_mean", "3"]),
    ({**DINOV2, "image_mean": [0.5, 0.5, 0.5, 0.5]}, ["image_mean"]),
    ({**DINOV2, "image_mean": None}, ["image_mean"]),
    ({**DINOV2, "image_std": [0.2, 0.0, 0.2]}, ["image_std"]),
    ({**DINOV2, "resample": 1}, ["resample"]),
    ({**DINOV2, "resample": None}, ["resample", "null"]),
    ({**DINOV2, "size": {"shortest_edge": 256, "longest_edge": 512}}, ["size"]),
    ({**DINOV2, "size": None}, ["size"]),
    ({**SIGLIP, "size": {"height": 224, "width": 256}}, ["size", "square"]),
    ({**DINOV2, "crop_size": {"height": 224, "width": 200}}, ["crop_size", "square"]),
    ({**SIGLIP, "do_center_crop": True}, ["crop_size"]),
    ({**DINOV2, "do_resize": "yes"}, ["do_resize"]),
    ({**DINOV2, "rescale_factor": None}, ["rescale_factor"]),
    ({**DINOV2, "rescale_factor": -1}, ["rescale_factor"]),
    ({**DINOV2, "crop_pct": 0.875}, ["crop_pct", "unknown"]),
    ({**DINOV2, "data_format": "HWC"}, ["data_format"]),
    ({**SIGLIP, "size": ["224", 224]}, ["size.height"]),
    ({**SIGLIP, "size": [224, 224, 3]}, ["size", "[height, width]"]),
    ({**SIGLIP, "size": True}, ["size"]),
])
def test_refusals_name_the_key(config, words):
  with pytest.raises(ValueError) as e:
    images.preprocess_from_hf(config, source="ckpt/preprocessor_config.json")
  msg = str(e.value)
  assert msg.startswith("ckpt/preprocessor_config.json: "), msg
  for w in words:
    assert w in msg, (w, msg)


def test_refuses_what_is_not_a_config():
  with pytest.raises(ValueError, match="JSON object"):
    images.preprocess_from_hf([1, 2], source="x.json")


def test_keys_that_do_not_change_pixels_are_accepted():
  base = images.preprocess_from_hf(DINOV2, source="d")
  noise = {"processor_class": "BitProcessor", "data_format": "channels_first",
           "input_data_format": None, "device": None, "return_tensors": None,
           "disable_grouping": None, "image_seq_length": None, "do_pad": False,
           "pad_size": None, "default_to_square": False, "do_convert_rgb": None}
  assert images.preprocess_from_hf({**DINOV2, **noise}, source="d") == base
  assert images.preprocess_from_hf(
      {**DINOV2, "image_processor_type": "BitImageProcessorFast"}, source="d") == base
  assert images.preprocess_from_hf({**DINOV2, "do_convert_rgb": False},
                                   source="d") == base
  # absent keys take the class defaults: CLIP's mean for Bit, 0.5 for SigLIP
  bare = images.preprocess_from_hf({"image_processor_type": "BitImageProcessor"},
                                   source="d")
  assert (bare.resize, bare.crop, bare.interpolation) == (224, 224, "bicubic")
  assert bare.mean == (0.48145466, 0.4578275, 0.40821073)
  bare = images.preprocess_from_hf({"image_processor_type": "SiglipImageProcessor"},
                                   source="d")
  assert (bare.resize_to, bare.crop, bare.mean) == (224, None, (0.5, 0.5, 0.5))
  # an int size: the shortest edge (default_to_square false), or a square
  sq = images.preprocess_from_hf({**SIGLIP, "size": 224, "default_to_square": True},
                                 source="d")
  assert sq == images.preprocess_from_hf(SIGLIP, source="d")
  # no rescale, no normalisation: the identity's numbers
  raw = images.preprocess_from_hf({**SIGLIP, "do_rescale": False,
                                   "do_normalize": False}, source="d")
  u = np.arange(256, dtype=np.uint8)[:, None].repeat(3, 1)
  np.testing.assert_array_equal(raw.normalize(u), u.astype(np.float32))

"""Writes tests/data/vit/preprocess.npz: transformers' DINOv2 and SigLIP image
processors on seeded odd-size images.

    python tests/data/make_vit_preprocess.py [OUT_DIR]
    (needs torch, torchvision, transformers; no network)

For each config of `CONFIGS` (BitImageProcessor, DINOv2's; SiglipImageProcessor,
SigLIP's and fixed-resolution SigLIP 2's) it writes preprocessor_config.json to a
temporary folder and loads it twice: with the PIL-backend class explicitly
(`BitImageProcessorPil`, `SiglipImageProcessorPil`, the reference jaxal mirrors)
and with `AutoImageProcessor.from_pretrained(folder)`'s default (the
torchvision-backend class in transformers 5.23). Each runs on the images of
`CASES` (`pretrained_fixture.image`, and its greyscale and RGBA versions of
`case_image`, converted by the processor itself), and the npz gets, per case i:

  i/pil, i/auto   pixel_values[0] as returned (float32 [3, H, W], channels first)

and `meta`, a JSON string: the configs, the cases (with the SHA-256 of each
input image so the test knows it rebuilt the same one), the processor classes,
each PIL class's defaults (what an absent or null key means), the output sizes of
transformers' `get_resize_output_image_size(default_to_square=False)` for
`RESIZE_SIZES`, the measured PIL/auto differences and the versions.

Nothing here is imported by the test: its outputs are.
"""

import hashlib
import json
import os
import sys
import tempfile

import numpy as np
import PIL
import torch
import torchvision
import transformers
from PIL import Image
from transformers import AutoImageProcessor
from transformers.image_transforms import get_resize_output_image_size
from transformers.image_utils import ChannelDimension
from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil
from transformers.models.siglip.image_processing_pil_siglip import (
    SiglipImageProcessorPil)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrained_fixture as fx  # noqa: E402

PIL_CLASSES = {"BitImageProcessor": BitImageProcessorPil,
               "SiglipImageProcessor": SiglipImageProcessorPil}
IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
HALF = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
R = 0.00392156862745098  # 1/255, as the checkpoints write it
CONFIGS = {
    # facebook/dinov2-* preprocessor_config.json
    "dinov2": {"crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
               "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
               "do_resize": True, **IMAGENET,
               "image_processor_type": "BitImageProcessor", "resample": 3,
               "rescale_factor": R, "size": {"shortest_edge": 256}},
    # the same at a small size: the short side's crop offset is 1.5 (floor 1,
    # torchvision's round 2)
    "dino_small": {"crop_size": {"height": 32, "width": 32}, "do_center_crop": True,
                   "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
                   "do_resize": True, **IMAGENET,
                   "image_processor_type": "BitImageProcessor", "resample": 3,
                   "rescale_factor": R, "size": {"shortest_edge": 35}},
    # a crop larger than the resized short side: zero padding, by an odd amount
    # (transformers' numpy crop puts the image at ceil(3 / 2), its torchvision
    # crop at 3 // 2)
    "dino_pad": {"image_processor_type": "BitImageProcessor",
                 "crop_size": {"height": 28, "width": 28},
                 "size": {"shortest_edge": 25}, **IMAGENET},
    # no resize, only the crop (padded on small images)
    "dino_noresize": {"image_processor_type": "BitImageProcessor",
                      "do_resize": False, "crop_size": {"height": 32, "width": 32},
                      **IMAGENET},
    # old-style integer sizes: shortest edge (the class's default_to_square is
    # false), square crop; bilinear
    "dino_int": {"image_processor_type": "BitImageProcessorFast", "size": 35,
                 "crop_size": 32, "resample": 2, **IMAGENET},
    # resize to a square, then crop
    "bit_square": {"image_processor_type": "BitImageProcessor",
                   "size": {"height": 40, "width": 40},
                   "crop_size": {"height": 32, "width": 32}, "resample": 3},
    # google/siglip-*-224 preprocessor_config.json
    "siglip": {"do_normalize": True, "do_rescale": True, "do_resize": True, **HALF,
               "image_processor_type": "SiglipImageProcessor",
               "processor_class": "SiglipProcessor", "resample": 3,
               "rescale_factor": R, "size": {"height": 224, "width": 224}},
    "siglip_small": {"do_normalize": True, "do_rescale": True, "do_resize": True,
                     **HALF, "image_processor_type": "SiglipImageProcessor",
                     "processor_class": "SiglipProcessor", "resample": 3,
                     "rescale_factor": R, "size": {"height": 32, "width": 32}},
    # as a fixed-resolution SigLIP 2 checkpoint saved by a "Fast" processor
    # writes it: bilinear, and nulls, which transformers 5.23 keeps as None (so
    # do_convert_rgb is off and the processor fails on greyscale or RGBA images:
    # RGB cases only)
    "siglip2_small": {"crop_size": None, "data_format": "channels_first",
                      "default_to_square": True, "device": None,
                      "do_center_crop": None, "do_convert_rgb": None,
                      "do_normalize": True, "do_pad": None, "do_rescale": True,
                      "do_resize": True, **HALF,
                      "image_processor_type": "SiglipImageProcessorFast",
                      "input_data_format": None, "processor_class": "SiglipProcessor",
                      "resample": 2, "rescale_factor": R, "return_tensors": None,
                      "size": {"height": 32, "width": 32}},
    "siglip_nearest": {"image_processor_type": "SiglipImageProcessor", "resample": 0,
                       "size": {"height": 32, "width": 32}},
    "siglip_raw": {"image_processor_type": "SiglipImageProcessor",
                   "do_normalize": False, "size": {"height": 32, "width": 32}},
    "siglip_noscale": {"image_processor_type": "SiglipImageProcessor",
                       "do_rescale": False, "image_mean": [127.5, 120.0, 110.5],
                       "image_std": [64.0, 60.5, 70.25],
                       "size": {"height": 32, "width": 32}},
}
ODD = ((37, 53, "RGB"), (53, 37, "RGB"), (33, 101, "RGB"), (225, 223, "RGB"),
       (37, 53, "L"), (53, 37, "RGBA"))
# (config, height, width, mode)
CASES = ([("dino_small", *c) for c in ODD + ((35, 60, "RGB"), (35, 35, "RGB"),
                                              (64, 64, "RGB"))] +
         [("dinov2", 301, 257, "RGB"),
          ("dino_pad", 37, 53, "RGB"), ("dino_pad", 53, 37, "RGB"),
          ("dino_noresize", 37, 53, "RGB"), ("dino_noresize", 21, 41, "RGB"),
          ("dino_int", 53, 37, "RGB"), ("bit_square", 37, 53, "RGB")] +
         [("siglip_small", *c) for c in ODD + ((32, 32, "RGB"),)] +
         [("siglip", 301, 257, "RGB"),
          ("siglip2_small", 37, 53, "RGB"), ("siglip2_small", 225, 223, "RGB"),
          ("siglip_nearest", 33, 101, "RGB"),
          ("siglip_raw", 37, 53, "RGB"), ("siglip_noscale", 37, 53, "RGB")])
# (height, width) x shortest_edge of the resize-size table: odd sizes, both
# orientations, truncation (256 * 300 / 199 = 385.9), images already at size
RESIZE_SIZES = ([(37, 53), (53, 37), (33, 101), (101, 33), (35, 60), (60, 35),
                 (35, 35), (301, 257), (257, 301), (300, 199), (199, 300),
                 (224, 224), (225, 223), (223, 225), (256, 999), (999, 256),
                 (1, 7), (7, 1), (480, 640), (641, 479)], (24, 35, 224, 256))


def case_image(height: int, width: int, mode: str) -> Image.Image:
  """The PIL image of a case: `fx.image` as RGB, its Pillow greyscale ("L"), or
  with an alpha channel ("RGBA": a left-to-right ramp from 0 to 255, so fully
  transparent, partly and fully opaque pixels all occur)."""
  rgb = fx.image(height, width)
  if mode == "RGB":
    return Image.fromarray(rgb)
  if mode == "L":
    return Image.fromarray(rgb).convert("L")
  alpha = np.round(np.arange(width) * 255.0 / (width - 1)).astype(np.uint8)
  return Image.fromarray(np.dstack([rgb, np.broadcast_to(alpha, (height, width))]))


def sha(img: Image.Image) -> str:
  return hashlib.sha256(img.mode.encode() + np.asarray(img).tobytes()).hexdigest()


def load(config: dict):
  """(PIL-backend processor, AutoImageProcessor's default) of `config`."""
  with tempfile.TemporaryDirectory() as d:
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
      json.dump(config, f)
    base = config["image_processor_type"].removesuffix("Fast")
    pil = PIL_CLASSES[base].from_pretrained(d)
    auto = AutoImageProcessor.from_pretrained(d)
    assert type(AutoImageProcessor.from_pretrained(d, backend="pil")) is type(pil)
  return pil, auto


def levels(x: np.ndarray, p) -> np.ndarray:
  """The uint8 levels behind pixel_values x of processor p (its normalisation
  undone)."""
  mean = np.asarray(p.image_mean if p.do_normalize else (0, 0, 0), np.float64)
  std = np.asarray(p.image_std if p.do_normalize else (1, 1, 1), np.float64)
  scale = p.rescale_factor if p.do_rescale else 1.0
  y = (x.astype(np.float64) * std[:, None, None] + mean[:, None, None]) / scale
  return np.round(y).astype(np.int64)


def main(out: str) -> None:
  os.makedirs(out, exist_ok=True)
  arrays, cases, measured = {}, [], {}
  processors = {name: load(cfg) for name, cfg in CONFIGS.items()}
  for i, (name, h, w, mode) in enumerate(CASES):
    pil, auto = processors[name]
    img = case_image(h, w, mode)
    got = {}
    for kind, p in (("pil", pil), ("auto", auto)):
      x = p(images=img, return_tensors="pt")["pixel_values"]
      assert x.dtype == torch.float32 and x.shape[0] == 1, (name, kind, x.dtype)
      got[kind] = x[0].numpy()
      arrays[f"{i}/{kind}"] = got[kind]
    lv = {k: levels(v, pil) for k, v in got.items()}
    assert np.all((lv["pil"] >= 0) & (lv["pil"] <= 255))
    measured[str(i)] = {
        "max_abs": float(np.abs(got["pil"] - got["auto"]).max()),
        "max_levels": int(np.abs(lv["pil"] - lv["auto"]).max()),
        "frac_differing": float((lv["pil"] != lv["auto"]).mean())}
    cases.append({"config": name, "height": h, "width": w, "mode": mode,
                  "sha256": sha(img), "shape": list(got["pil"].shape)})
    print(f"{i:2d} {name:15s} {h:3d}x{w:<3d} {mode:4s} -> {got['pil'].shape}  "
          f"pil vs auto: max |d| {measured[str(i)]['max_abs']:.3g}, "
          f"{measured[str(i)]['max_levels']} level(s)")
  sizes = []
  for s in RESIZE_SIZES[1]:
    for h, w in RESIZE_SIZES[0]:
      oh, ow = get_resize_output_image_size(
          np.zeros((3, h, w), np.uint8), size=s, default_to_square=False,
          input_data_format=ChannelDimension.FIRST)
      sizes.append([h, w, s, oh, ow])
  defaults = {}
  for base, cls in PIL_CLASSES.items():
    p = cls()
    defaults[base] = {k: (dict((a, b) for a, b in dict(v).items() if b is not None)
                          if k in ("size", "crop_size") and v is not None else
                          int(v) if k == "resample" else
                          list(v) if isinstance(v, tuple) else v)
                      for k in p._valid_kwargs_names for v in [getattr(p, k)]}
  meta = {
      "configs": CONFIGS, "cases": cases, "measured": measured,
      "resize_sizes": sizes, "class_defaults": defaults,
      "pil_classes": {n: type(p).__name__ for n, (p, _) in processors.items()},
      "auto_classes": {n: type(a).__name__ for n, (_, a) in processors.items()},
      "made_with": {"transformers": transformers.__version__,
                    "torch": torch.__version__,
                    "torchvision": torchvision.__version__,
                    "pillow": PIL.__version__, "numpy": np.__version__}}
  path = os.path.join(out, "preprocess.npz")
  np.savez_compressed(path, meta=np.array(json.dumps(meta, sort_keys=True)),
                      **arrays)
  print("AutoImageProcessor default:", sorted(set(meta["auto_classes"].values())))
  print(f"wrote {path}: {len(arrays)} arrays, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else
       os.path.join(os.path.dirname(os.path.abspath(__file__)), "vit"))

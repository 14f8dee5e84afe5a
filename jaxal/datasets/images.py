"""Image folders: find the images under a directory and decode them for M_S.

What the `jaxal` command embeds when a user brings their own unlabeled images
(JPEG or PNG, in nested folders, any sizes, any colour mode). Decoding is Pillow
(no TensorFlow: the GPU machines have none) and follows the evaluation transform
of `jaxal.datasets.pipeline.eval_transform`: an image already at the model's
size is used as is; any other is resized (antialiased) so that its shorter side is
size / 0.875 and centre-cropped to size x size. Greyscale, palette and alpha images
become RGB; the EXIF orientation of camera JPEGs is applied.

A source imported from torchvision or timm weights (`jaxal.models.pretrained`)
records its own evaluation transform instead, a `Preprocess`: torchvision's
`Resize(resize)` of the shorter side, `CenterCrop(crop)` and `Normalize(mean,
std)` on a PIL image, reproduced pixel for pixel (the same Pillow resampling, the
same integer rounding of the resized side and of the crop offset). A DINOv2 or
SigLIP checkpoint from Hugging Face records the transform of its
preprocessor_config.json (`preprocess_from_hf`): the PIL-backend image processors
of transformers (`BitImageProcessorPil`, `SiglipImageProcessorPil`), reproduced
the same way, float32 values included.

An image that cannot be read is reported with its path and reason, never fatal:
`load_batch` returns a mask of what decoded.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Optional, Sequence

import numpy as np

from jaxal.datasets.pipeline import CROP_FRACTION
from jaxal.errors import InputError

EXTENSIONS = (".jpg", ".jpeg", ".png")


def scan(root: str) -> list[str]:
  """Paths (relative to `root`, '/'-separated, sorted) of every JPEG or PNG under
  `root`, in nested folders too; hidden files and folders are skipped.

  Raises ValueError when `root` is not a directory or holds no image.
  """
  if not os.path.isdir(root):
    raise InputError(f"--images {root!r} is not a directory; pass the folder that "
                     "holds the images (JPEG or PNG, nested folders allowed).")
  out = []
  for folder, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if not d.startswith(".")]
    for name in files:
      if not name.startswith(".") and name.lower().endswith(EXTENSIONS):
        rel = os.path.relpath(os.path.join(folder, name), root)
        out.append(rel.replace(os.sep, "/"))
  if not out:
    raise InputError(f"--images {root!r} holds no image ({', '.join(EXTENSIONS)}, "
                     "searched recursively).")
  return sorted(out)


INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
# Pillow's integer codes of those filters, as the Hugging Face configs give them
# (`resample`); Pillow's others (1 lanczos, 4 box, 5 hamming) are not supported.
PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# How the centre crop's offsets are rounded: torchvision's `center_crop`
# (`int(round((side - crop) / 2))`, halves to even) or transformers'
# `image_transforms.center_crop` (`(side - crop) // 2`, zero padding where the
# crop is larger than the image).
ROUNDINGS = ("round", "floor")
# How an image with transparency becomes RGB: jaxal's own (the colour channels
# kept, alpha dropped) or transformers' `image_transforms.convert_to_rgb`
# (composited onto white).
ALPHAS = ("drop", "white")


def to_rgb(img, alpha: str = "drop"):
  """The PIL image as RGB.

  Args:
    img: a PIL image of any mode.
    alpha: "drop": greyscale and palette images are converted by Pillow, the
      alpha channel of RGBA/LA images (or a palette's transparent colour) is
      dropped, as jaxal always did. "white": the image is composited onto a white
      background whenever it has an alpha band or a `transparency` entry, as
      transformers' `image_transforms.convert_to_rgb` does for the processors'
      `do_convert_rgb` (an RGB image with a transparent colour key included).

  Returns:
    An RGB PIL image (`img` itself when it was RGB already, with "drop").
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if alpha == "white":
    if "A" in img.getbands() or img.info.get("transparency") is not None:
      img = img.convert("RGBA")
      background = Image.new("RGBA", img.size, (255, 255, 255, 255))
      return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")
  if alpha != "drop":
    raise InputError(f"preprocess: alpha must be one of {ALPHAS}, got {alpha!r}.")
  if img.mode != "RGB":
    return img.convert("RGBA").convert("RGB") if "transparency" in img.info \
        else img.convert("RGB")
  return img


def _int_or_none(name: str, v, low: int = 1):
  if v is None:
    return None
  if isinstance(v, bool) or not isinstance(v, (int, float, np.integer)) or \
      int(v) != v or int(v) < low:
    raise InputError(f"preprocess: {name} must be an integer >= {low} or None, got "
                     f"{v!r}.")
  return int(v)


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """An imported source's evaluation transform, on a PIL image: convert to RGB,
  resize, centre-crop (uint8 pixels, `pixels`), then rescale and normalise
  (float32, `normalize`).

  With the defaults of the new fields this is torchvision's `Resize(resize,
  interpolation)`, `CenterCrop(crop)`, `ToTensor()`, `Normalize(mean, std)`, as
  torchvision and timm weights are evaluated. `preprocess_from_hf` fills the other
  fields to mirror the PIL-backend image processors of transformers 5.23
  (`BitImageProcessorPil` for DINOv2, `SiglipImageProcessorPil` for SigLIP and
  fixed-resolution SigLIP 2): `PilBackend._preprocess`, i.e. `convert_to_rgb`,
  `resize` (a Pillow resize), `center_crop`, `rescale` and `normalize` of
  `transformers.image_transforms`.

  Attributes:
    resize: the shorter side after resizing (torchvision's int `size`, the
      processors' `size: {"shortest_edge"}`): the longer one becomes
      `int(resize * long / short)`, truncated, as both compute it; an image
      already at that size is not resampled (Pillow returns a copy). None: no
      shorter-side resize.
    crop: the side of the square centre crop, at offsets chosen by `rounding`.
      None: no crop (then `resize_to` fixes the output size).
    interpolation: Pillow's filter for the resize ("bilinear", "bicubic" or
      "nearest"), antialiased when shrinking as Pillow always does, without
      `reducing_gap`; torchvision and the PIL-backend processors run the same
      Pillow call (the torchvision-backend processors and torchvision's tensor
      path are a different implementation and may differ by a few grey levels).
    mean, std: per channel, on rescaled values.
    resize_to: the side of the square the image is resized to, aspect ratio not
      kept (the processors' `size: {"height", "width"}`); None: not that mode.
      At most one of `resize` and `resize_to` is set.
    rounding: the crop offsets (one of `ROUNDINGS`): "round" is torchvision's
      `int(round((side - crop) / 2))` (halves to even); "floor" is transformers'
      `(side - crop) // 2`, where a crop larger than the image is padded with
      black (zero) pixels, the image ending up at offset `ceil((crop - side) /
      2)` as in `image_transforms.center_crop`.
    rescale_factor: None: torchvision's `ToTensor`, `float32(x) / 255` in float32.
      A number: transformers' `rescale`, `float64(x) * rescale_factor` rounded to
      float32 (1.0 when a processor has `do_rescale: false`).
    alpha: how images with transparency become RGB (one of `ALPHAS`, see
      `to_rgb`): "drop" for torchvision sources, "white" for the processors'
      `do_convert_rgb`.
  """
  resize: Optional[int] = None
  crop: Optional[int] = None
  interpolation: str = "bilinear"
  mean: tuple = IMAGENET_MEAN
  std: tuple = IMAGENET_STD
  resize_to: Optional[int] = None
  rounding: str = "round"
  rescale_factor: Optional[float] = None
  alpha: str = "drop"

  def __post_init__(self):
    resize = _int_or_none("resize", self.resize)
    crop = _int_or_none("crop", self.crop)
    resize_to = _int_or_none("resize_to", self.resize_to)
    if resize is not None and resize_to is not None:
      raise InputError(f"preprocess: give resize (the shorter side) or resize_to "
                       f"(a square), not both; got resize={resize}, "
                       f"resize_to={resize_to}.")
    if self.rounding not in ROUNDINGS:
      raise InputError(f"preprocess: rounding must be one of {ROUNDINGS}, got "
                       f"{self.rounding!r}.")
    if crop is None and resize_to is None:
      raise InputError("preprocess: without a crop the output size must be fixed: "
                       "give crop, or resize_to (resize keeps the aspect ratio, so "
                       f"the resized image's size varies); got resize={resize}.")
    if self.rounding == "round" and crop is not None and (
        crop > (resize if resize is not None else resize_to or 0)):
      raise InputError(f"preprocess: need resize >= crop >= 1, got resize="
                       f"{resize if resize is not None else resize_to}, crop={crop} "
                       "(only rounding='floor', transformers' centre crop, pads an "
                       "image smaller than the crop).")
    if self.interpolation not in INTERPOLATIONS:
      raise InputError(f"preprocess: interpolation must be one of {INTERPOLATIONS}, "
                       f"got {self.interpolation!r}.")
    if self.alpha not in ALPHAS:
      raise InputError(f"preprocess: alpha must be one of {ALPHAS}, got "
                       f"{self.alpha!r}.")
    rescale = self.rescale_factor
    if rescale is not None:
      if isinstance(rescale, bool) or not isinstance(rescale, (int, float)) or \
          not np.isfinite(rescale) or rescale <= 0:
        raise InputError("preprocess: rescale_factor must be a finite number > 0 "
                         f"or None, got {rescale!r}.")
      object.__setattr__(self, "rescale_factor", float(rescale))
    for name in ("mean", "std"):
      v = tuple(float(x) for x in getattr(self, name))
      if len(v) != 3 or not all(np.isfinite(v)) or (name == "std" and min(v) <= 0):
        raise InputError(f"preprocess: {name} must be 3 finite numbers"
                         f"{' > 0' if name == 'std' else ''}, got {v}.")
      object.__setattr__(self, name, v)
    object.__setattr__(self, "resize", resize)
    object.__setattr__(self, "crop", crop)
    object.__setattr__(self, "resize_to", resize_to)

  @property
  def output_size(self) -> int:
    """The side of the square images this transform gives."""
    return self.crop if self.crop is not None else self.resize_to

  # The fields of the first version, always written; the others only when set.
  _ALWAYS = ("resize", "crop", "interpolation", "mean", "std")

  def to_json(self) -> dict:
    """This transform as a JSON-ready dict (`from_json` reads it back).

    The five fields of torchvision's transform are always written; the later
    ones only when they differ from their defaults, so a torchvision source
    writes exactly what earlier versions did (work directories compare it).
    """
    defaults = Preprocess.__dataclass_fields__
    out = {}
    for k, v in dataclasses.asdict(self).items():
      if k in self._ALWAYS or v != defaults[k].default:
        out[k] = list(v) if isinstance(v, tuple) else v
    return out

  @classmethod
  def from_json(cls, d: dict) -> "Preprocess":
    """The transform `to_json` wrote (by this or an earlier version)."""
    unknown = sorted(set(d) - set(cls.__dataclass_fields__))
    if unknown:
      raise InputError(f"preprocess: unknown field(s) {unknown} (written by a newer "
                       "jaxal?); known: "
                       f"{sorted(cls.__dataclass_fields__)}.")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

  def resized_size(self, height: int, width: int) -> tuple[int, int]:
    """(height, width) of an image of `height` x `width` after the resize step:
    transformers' `get_resize_output_image_size(default_to_square=False)` and
    torchvision's `Resize(int)` for `resize` (the longer side truncated), the
    square for `resize_to`, unchanged without either."""
    if self.resize_to is not None:
      return self.resize_to, self.resize_to
    if self.resize is None:
      return height, width
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(self.resize * long / short)
    return (new_long, self.resize) if width <= height else (self.resize, new_long)

  def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
    """Pillow's (left, top, right, bottom) of the centre crop of a `height` x
    `width` image (parts outside the image, with rounding="floor", are black)."""
    c = self.crop
    if self.rounding == "round":  # torchvision's center_crop
      top, left = int(round((height - c) / 2.0)), int(round((width - c) / 2.0))
    else:  # transformers' image_transforms.center_crop
      top, left = (height - c) // 2, (width - c) // 2
    return left, top, left + c, top + c

  def apply(self, img):
    """The RGB PIL image resized and centre-cropped (uint8 pixels, not
    normalised)."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    h, w = self.resized_size(img.height, img.width)
    if (w, h) != img.size:
      img = img.resize((w, h), getattr(Image.Resampling, self.interpolation.upper()))
    return img if self.crop is None else img.crop(self.crop_box(h, w))

  def pixels(self, img) -> np.ndarray:
    """uint8 [output_size, output_size, 3]: the PIL image (any mode) converted to
    RGB (`to_rgb` with `alpha`), resized and centre-cropped (`apply`). What
    `load` gives for an image file, after its EXIF orientation."""
    return np.asarray(self.apply(to_rgb(img, self.alpha)), np.uint8)

  def normalize(self, images: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] -> float32 model input, in the reference's order of
    operations: rescaled (`x / 255` in float32, torchvision's `ToTensor`; or
    `float64(x) * rescale_factor` cast to float32, transformers' `rescale`), then
    `(x - mean) / std` in float32 (torchvision's `Normalize`, transformers'
    `normalize`)."""
    if self.rescale_factor is None:
      x = np.asarray(images, np.float32) / np.float32(255)
    else:
      x = (np.asarray(images, np.float64) * self.rescale_factor).astype(np.float32)
    return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)

  def pixel_values(self, img) -> np.ndarray:
    """float32 [output_size, output_size, 3], channels last: the model input of
    one PIL image, `normalize(pixels(img))`, the two steps `jaxal embed` runs
    (`load_batch`, then `normalizer`). For a `preprocess_from_hf` transform, the
    processor's `pixel_values` transposed to HWC."""
    return self.normalize(self.pixels(img))


def normalizer(preprocess: Optional[Preprocess]):
  """uint8 images -> the model's float input: `preprocess.normalize`, or jaxal's
  own `pipeline.normalize` for a trained source (no recorded transform)."""
  from jaxal.datasets import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.normalize if preprocess is None else preprocess.normalize


# ------------------------------------------------- Hugging Face image processors
# The class defaults of the processors of transformers 5.23: what a key absent
# from preprocessor_config.json means. A key that is there with null is None, not
# the default (`ImageProcessingMixin.__init__` sets every key of the file as an
# attribute before `BaseImageProcessor._set_attributes` looks for defaults), so a
# null flag is off.
_HF_COMMON = {"do_convert_rgb": True, "do_resize": True, "default_to_square": False,
              "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255,
              "do_normalize": True, "do_pad": None, "pad_size": None,
              "data_format": None, "input_data_format": None, "device": None,
              "return_tensors": None, "disable_grouping": None,
              "image_seq_length": None}
HF_PROCESSOR_DEFAULTS = {
    # models/bit/image_processing_pil_bit.py (DINOv2's processor)
    "BitImageProcessor": {
        **_HF_COMMON, "size": {"shortest_edge": 224}, "do_center_crop": True,
        "crop_size": {"height": 224, "width": 224},
        "image_mean": (0.48145466, 0.4578275, 0.40821073),
        "image_std": (0.26862954, 0.26130258, 0.27577711)},
    # models/siglip/image_processing_pil_siglip.py (SigLIP, SigLIP 2 fixed size)
    "SiglipImageProcessor": {
        **_HF_COMMON, "size": {"height": 224, "width": 224}, "do_center_crop": None,
        "crop_size": None, "image_mean": (0.5, 0.5, 0.5),
        "image_std": (0.5, 0.5, 0.5)},
}
# Keys that name the processor, not what it does to the pixels.
_HF_METADATA = ("image_processor_type", "processor_class")
# NaFlex (variable resolution) SigLIP 2 processors and their keys.
_HF_NAFLEX = ("Siglip2ImageProcessor",)
_HF_NAFLEX_KEYS = ("max_num_patches", "patch_size")


def _hf_bool(config: dict, resolved: dict, key: str, where: str) -> bool:
  v = resolved[key]
  if v is None:
    return False
  if not isinstance(v, bool):
    raise InputError(f"{where}: {key} must be true, false or null, got "
                     f"{config.get(key)!r}; fix the file.")
  return v


def _hf_size(value, key: str, default_to_square: bool, where: str) -> dict:
  """transformers' `get_size_dict`: an int is a square, or the shortest edge when
  `default_to_square` is false; a [height, width] list is that size."""
  if isinstance(value, int) and not isinstance(value, bool):
    value = {"height": value, "width": value} if default_to_square else \
        {"shortest_edge": value}
  elif isinstance(value, (list, tuple)):
    if len(value) != 2:
      raise InputError(f"{where}: {key} as a list must be [height, width], got "
                       f"{value!r}.")
    value = {"height": value[0], "width": value[1]}
  if not isinstance(value, dict):
    raise InputError(f"{where}: {key} must be a dict such as {{\"height\": 224, "
                     f"\"width\": 224}}, got {value!r}.")
  for k, v in value.items():
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise InputError(f"{where}: {key}.{k} must be an integer >= 1, got {v!r}.")
  return dict(value)


def preprocess_from_hf(config: dict, *, source: str) -> Preprocess:
  """The `Preprocess` of a Hugging Face checkpoint's preprocessor_config.json.

  Mirrors transformers 5.23's PIL-backend processors, `BitImageProcessorPil`
  (DINOv2: `size: {"shortest_edge"}`, a centre crop) and
  `SiglipImageProcessorPil` (SigLIP, and SigLIP 2's fixed-resolution
  checkpoints: `size: {"height", "width"}`, no crop), both
  `image_processing_backends.PilBackend._preprocess`: `convert_to_rgb` (alpha
  composited onto white), a Pillow resize (`resample`, no `reducing_gap`), the
  centre crop of `image_transforms.center_crop` (floor offsets, zero padding),
  `rescale` (float64, cast to float32) and `normalize` (float32). A key absent
  from the file takes the processor class's default (`HF_PROCESSOR_DEFAULTS`); a
  null one is None, a flag then off, as transformers 5.23 loads it.
  `AutoImageProcessor` returns the torchvision-backend classes
  (`BitImageProcessor`, `SiglipImageProcessor`) by default, whose tensor resize
  differs from Pillow's by a few grey levels; jaxal decodes with Pillow and
  follows the PIL ones.

  Everything the config says is checked; what jaxal cannot reproduce is refused
  rather than approximated: another processor type (NaFlex SigLIP 2 included),
  `do_pad`, a size other than `{"shortest_edge"}` / `{"height", "width"}`,
  non-square sizes (jaxal embeds square images), an output whose size varies per
  image (a shorter-side resize without crop, no resize and no crop), a mean or
  std that is not per RGB channel, an unknown `resample` code, unknown keys.
  Keys that do not change the pixels are accepted: `image_processor_type`,
  `processor_class`, `data_format`, `input_data_format`, `device`,
  `return_tensors`, `disable_grouping`, `image_seq_length`, `pad_size` without
  `do_pad`, `default_to_square` (it only shapes an integer `size`) and
  `do_convert_rgb` (jaxal always converts to RGB as `do_convert_rgb: true` does:
  with false or null the processors fail on greyscale and alpha images, the mean
  having 3 values and the image 1, 2 or 4 channels, and an RGB image is the same
  either way).

  The checks run in a fixed order (the processor type, the keys, the flags, then
  resample, size, crop, rescale and normalisation), so a config with several
  faults is refused for the first of them.

  Args:
    config: the parsed preprocessor_config.json.
    source: where it was read (the file's path), for the messages.

  Returns:
    The transform, with rounding="floor", the rescale factor and alpha="white".

  Raises:
    ValueError: naming `source`, the key and what to do, for anything refused.
  """
  where = f"{source}"
  r = _hf_resolve(config, _hf_processor_class(config, where), where)
  flags = _hf_flags(config, r, where)
  interpolation = _hf_interpolation(r["resample"], flags.resize, where)
  resize = resize_to = crop = None
  if flags.resize:
    resize, resize_to = _hf_resize(r["size"], flags.default_to_square, where)
  if flags.center_crop:
    crop = _hf_crop(r["crop_size"], where)
  if crop is None and resize_to is None:
    raise InputError(
        f"{where}: " + ("size {\"shortest_edge\"} with do_center_crop false"
                        if flags.resize else "do_resize false with no centre crop") +
        " gives each image its own size; jaxal needs one size: set do_center_crop "
        "true with a crop_size, or use size {\"height\": S, \"width\": S}.")
  rescale = _hf_rescale(r["rescale_factor"], where) if flags.rescale else 1.0
  mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
  if flags.normalize:
    mean = _hf_channel_stats(config, r, "image_mean", where)
    std = _hf_channel_stats(config, r, "image_std", where)
  return Preprocess(resize=resize, crop=crop, interpolation=interpolation,
                    mean=mean, std=std, resize_to=resize_to, rounding="floor",
                    rescale_factor=rescale, alpha="white")


def _hf_processor_class(config, where: str) -> str:
  """The key of `HF_PROCESSOR_DEFAULTS` that `config`'s image_processor_type
  names, its "Fast" / "Pil" backend suffix dropped; ValueError for anything but
  a JSON object of a supported type (NaFlex SigLIP 2 refused by name)."""
  if not isinstance(config, dict):
    raise InputError(f"{where}: expected a JSON object (preprocessor_config.json), "
                     f"got {type(config).__name__}.")
  kind = config.get("image_processor_type")
  base = kind[:-4] if isinstance(kind, str) and kind.endswith("Fast") else kind
  base = base[:-3] if isinstance(base, str) and base.endswith("Pil") else base
  naflex = [k for k in _HF_NAFLEX_KEYS if k in config]
  if base in _HF_NAFLEX or naflex:
    raise InputError(
        f"{where}: image_processor_type {kind!r}"
        f"{' with ' + ', '.join(naflex) if naflex else ''} is SigLIP 2's NaFlex "
        "processor (variable resolution: aspect-preserving resize to at most "
        "max_num_patches patches, padded patch sequences); NaFlex / variable "
        "resolution is not supported. Use a fixed-resolution SigLIP 2 checkpoint "
        "(e.g. siglip2-base-patch16-224), whose processor is SiglipImageProcessor.")
  if base not in HF_PROCESSOR_DEFAULTS:
    raise InputError(
        f"{where}: image_processor_type {kind!r} is not supported; jaxal reads "
        f"{' and '.join(sorted(HF_PROCESSOR_DEFAULTS))} configs (DINOv2; SigLIP and "
        "fixed-resolution SigLIP 2). Check that this is the checkpoint's "
        "preprocessor_config.json.")
  return base


def _hf_resolve(config: dict, base: str, where: str) -> dict:
  """Every key of processor class `base`: the file's value where it has one
  (null included), the class default otherwise; ValueError for a key the class
  does not know."""
  defaults = HF_PROCESSOR_DEFAULTS[base]
  unknown = sorted(set(config) - set(defaults) - set(_HF_METADATA))
  if unknown:
    raise InputError(
        f"{where}: unknown key(s) {unknown} for {base}: jaxal does not know how "
        "they change the pixels, so it cannot reproduce the processor; known keys: "
        f"{sorted(set(defaults) | set(_HF_METADATA))}.")
  return {k: config[k] if k in config else v for k, v in defaults.items()}


@dataclasses.dataclass(frozen=True)
class _HfFlags:
  """The boolean switches of a processor config that shape the transform."""
  resize: bool
  center_crop: bool
  rescale: bool
  normalize: bool
  default_to_square: bool


def _hf_flags(config: dict, r: dict, where: str) -> _HfFlags:
  """The flags of resolved config `r`; every boolean key and the data formats
  are checked (`do_pad: true` refused) even where they do not shape the
  transform, so that a malformed file is refused rather than half read."""
  if _hf_bool(config, r, "do_pad", where):
    raise InputError(f"{where}: do_pad: true (padding images to a common size) is "
                     "not supported; jaxal gives every image the same size by "
                     "resize and crop. Set do_pad to false if the model was "
                     "evaluated without padding.")
  for k in ("data_format", "input_data_format"):
    if r[k] not in (None, "channels_first", "channels_last"):
      raise InputError(f"{where}: {k} {r[k]!r}: expected \"channels_first\", "
                       "\"channels_last\" or null.")
  _hf_bool(config, r, "do_convert_rgb", where)
  _hf_bool(config, r, "disable_grouping", where)
  return _HfFlags(*(_hf_bool(config, r, k, where) for k in (
      "do_resize", "do_center_crop", "do_rescale", "do_normalize",
      "default_to_square")))


def _hf_interpolation(resample, do_resize: bool, where: str) -> str:
  """The `Preprocess.interpolation` of Pillow filter code `resample`.

  Without a resize nothing is resampled and `resample` is not read: "bilinear"
  only fills the field.
  """
  if not do_resize:
    return "bilinear"
  if resample is None:
    raise InputError(f"{where}: resample is null while do_resize is true (the "
                     "processor refuses that too); give Pillow's filter code, e.g. "
                     "3 for bicubic.")
  if isinstance(resample, bool) or resample not in PIL_RESAMPLE:
    raise InputError(f"{where}: resample {resample!r} is not supported; jaxal "
                     f"resamples with Pillow's filters {PIL_RESAMPLE} only.")
  return PIL_RESAMPLE[resample]


def _hf_resize(value, default_to_square: bool,
               where: str) -> tuple[Optional[int], Optional[int]]:
  """(`Preprocess.resize`, `Preprocess.resize_to`) of the config's `size`: the
  shorter side's length for {"shortest_edge"}, the square's side for {"height",
  "width"}; the other None."""
  size = _hf_size(value, "size", default_to_square, where)
  if set(size) == {"shortest_edge"}:
    return size["shortest_edge"], None
  if set(size) == {"height", "width"}:
    if size["height"] != size["width"]:
      raise InputError(f"{where}: size {size} is not square; jaxal embeds square "
                       "images (one image_size).")
    return None, size["height"]
  raise InputError(f"{where}: size {size}: only {{\"shortest_edge\": S}} "
                   "(DINOv2) and {\"height\": S, \"width\": S} (SigLIP) are "
                   "supported (longest_edge, max_height/max_width and pixel "
                   "budgets are not).")


def _hf_crop(value, where: str) -> int:
  """The side of the square centre crop of the config's `crop_size`."""
  if value is None:
    raise InputError(f"{where}: do_center_crop is true but crop_size is missing; "
                     "add crop_size: {\"height\": S, \"width\": S}.")
  cs = _hf_size(value, "crop_size", True, where)
  if set(cs) != {"height", "width"}:
    raise InputError(f"{where}: crop_size {cs} must be {{\"height\": S, "
                     "\"width\": S}.")
  if cs["height"] != cs["width"]:
    raise InputError(f"{where}: crop_size {cs} is not square; jaxal embeds square "
                     "images (one image_size).")
  return cs["height"]


def _hf_rescale(value, where: str) -> float:
  """The config's `rescale_factor`, a finite number > 0, as a float."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or \
      not np.isfinite(value) or value <= 0:
    raise InputError(f"{where}: rescale_factor must be a number > 0 (1/255 = "
                     f"0.00392156862745098 for [0, 1] pixels), got {value!r}.")
  return float(value)


def _hf_channel_stats(config: dict, r: dict, key: str,
                      where: str) -> tuple[float, float, float]:
  """`image_mean` or `image_std` (`key`) of resolved config `r` as 3 floats (R,
  G, B); one number stands for every channel, as in transformers' normalize."""
  v = r[key]
  if isinstance(v, (int, float)) and not isinstance(v, bool):
    v = (v,) * 3
  if not isinstance(v, (list, tuple)) or len(v) != 3 or not all(
      isinstance(x, (int, float)) and not isinstance(x, bool)
      and np.isfinite(x) for x in v):
    raise InputError(f"{where}: {key} must be 3 numbers (R, G, B) or one number, "
                     f"got {config.get(key)!r}; jaxal feeds RGB images.")
  if key == "image_std" and min(v) <= 0:
    raise InputError(f"{where}: image_std must be > 0, got {v!r}.")
  return tuple(float(x) for x in v)


def _resize_crop(img, size: int):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  w, h = img.size
  if (w, h) == (size, size):
    return img
  short = int(round(size / CROP_FRACTION))
  scale = short / min(w, h)
  nw, nh = max(short, int(round(w * scale))), max(short, int(round(h * scale)))
  img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
  left, top = (nw - size) // 2, (nh - size) // 2
  return img.crop((left, top, left + size, top + size))


def load(path: str, size: int, preprocess: Optional[Preprocess] = None
         ) -> np.ndarray:
  """uint8 [size, size, 3] of the image at `path`, by `preprocess` when given
  (`Preprocess.pixels`; its `output_size` is then the size), else by jaxal's own
  evaluation transform. The EXIF orientation of camera JPEGs is applied first.

  Raises OSError or ValueError (Pillow's) when the file is not a readable image.
  """
  from PIL import Image, ImageOps  # pylint: disable=g-import-not-at-top
  with Image.open(path) as img:
    img.load()  # decodes now: a truncated file fails here, not later
    img = ImageOps.exif_transpose(img)
    if preprocess is not None:
      return preprocess.pixels(img)
    return np.asarray(_resize_crop(to_rgb(img), size), np.uint8)


def _try_load(path: str, size: int, preprocess: Optional[Preprocess]):
  try:
    return load(path, size, preprocess), None
  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError... for
  # bad files; whatever one file raises, it is reported and the run goes on.
  except Exception as e:  # noqa: BLE001
    return None, f"{type(e).__name__}: {e}"


def load_batch(root: str, paths: Sequence[str], size: int, *,
               threads: Optional[int] = None,
               preprocess: Optional[Preprocess] = None
               ) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
  """Decodes `paths` (relative to `root`) in parallel threads (by `preprocess`
  when given, see `load`).

  Returns (images uint8 [n_ok, size, size, 3] in the order of `paths`, ok mask
  [len(paths)] bool, {path: reason} of the images that could not be read).
  """
  threads = threads or min(8, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    results = list(pool.map(
        lambda p: _try_load(os.path.join(root, p), size, preprocess), paths))
  ok = np.array([img is not None for img, _ in results], bool)
  errors = {p: err for p, (_, err) in zip(paths, results) if err is not None}
  images = np.stack([img for img, _ in results if img is not None]) if ok.any() \
      else np.zeros((0, size, size, 3), np.uint8)
  return images, ok, errors

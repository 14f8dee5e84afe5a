"""SigLIP's and SigLIP 2's tokenizers give transformers' ids, without transformers.

The reference ids in tests/data/vit/tokens.json were computed by transformers
5.23.0 itself (tests/data/make_vit_text.py, with sentencepiece 0.2.3 and
tokenizers 0.23.3) on the tokenizer folders next to it, which that script trains
and lays out as the released checkpoints are: tok_siglip/ (SigLIP: spiece.model,
`SiglipTokenizer`) and tok_siglip2/ (SigLIP 2: Gemma's tokenizer.json, config.json's
model_type "siglip2", so `Siglip2Tokenizer`, which lowercases). These tests need
sentencepiece and tokenizers, not transformers; the last one compares with a live
transformers when it is installed.
"""

import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jaxal.models import text_tokenizer

from tests.conftest import ROOT, subprocess_env  # noqa: E402

VIT = os.path.join(ROOT, "tests", "data", "vit")
SIGLIP, SIGLIP2 = os.path.join(VIT, "tok_siglip"), os.path.join(VIT, "tok_siglip2")


@pytest.fixture(scope="module")
def golden() -> dict:
  with open(os.path.join(VIT, "tokens.json"), encoding="ascii") as f:
    return json.load(f)


DELETE = object()


def copy(src: str, dst, drop=(), **config_edits) -> str:
  """`src` copied to `dst` without the files `drop`, tokenizer_config.json edited
  (a key set to DELETE is removed)."""
  dst = str(dst)
  shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*drop))
  if config_edits:
    path = os.path.join(dst, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
      config = json.load(f)
    config.update(config_edits)
    config = {k: v for k, v in config.items() if v is not DELETE}
    with open(path, "w", encoding="utf-8") as f:
      json.dump(config, f)
  return dst


def check_against(golden: dict, name: str, folder: str) -> None:
  ref = golden["reference"][name]
  strings = golden["strings"]
  for length, want in ref["ids"].items():
    tok = text_tokenizer.load(folder, max_length=int(length))
    assert tok.tokenizer_class == ref["class"]
    ids, mask = tok.encode_with_mask(strings)
    assert ids.dtype == np.int32 and mask.dtype == np.int32
    assert ids.shape == mask.shape == (len(strings), int(length))
    for text, row, want_row in zip(strings, ids.tolist(), want):
      assert row == want_row, f"{name} max_length {length}: {text!r}"
    lengths = ref["lengths"][length]
    np.testing.assert_array_equal(mask.sum(1), lengths)
    ones = [[1] * n + [0] * (int(length) - n) for n in lengths]
    if ref["padding_side"] == "left":
      ones = [row[::-1] for row in ones]
    np.testing.assert_array_equal(mask, ones)
    np.testing.assert_array_equal(tok.encode(strings), ids)


def test_siglip_ids_equal_transformers(golden):
  check_against(golden, "tok_siglip", SIGLIP)


def test_siglip2_ids_equal_transformers(golden):
  check_against(golden, "tok_siglip2", SIGLIP2)


def test_siglip2_without_config_follows_tokenizer_class(golden, tmp_path):
  """Without config.json, AutoTokenizer takes the GemmaTokenizer
  tokenizer_config.json names: no lowercasing."""
  folder = copy(SIGLIP2, tmp_path / "t", ["config.json"])
  check_against(golden, "tok_siglip2_without_config", folder)


def test_the_references_exercise_the_rules(golden):
  """tokens.json holds what the rules are about: an over-long string truncated
  with its eos kept, both versions' case rules, and the versions it was made with."""
  strings, ref = golden["strings"], golden["reference"]
  assert golden["versions"]["transformers"] == "5.23.0"
  long = max(range(len(strings)), key=lambda i: len(strings[i]))
  for name in ("tok_siglip", "tok_siglip2"):
    for length in ("16", "64"):
      row = ref[name]["ids"][length][long]
      assert ref[name]["lengths"][length][long] == int(length)
      assert row[-1] == 1  # the eos of both, kept
      assert name == "tok_siglip" or 0 not in row  # no SigLIP 2 pad in a full row
  cased = strings.index("A Photo Of A CAT!"), strings.index("a photo of a cat")
  for name in ("tok_siglip", "tok_siglip2"):  # lowercased, and v1 drops the "!"
    rows = ref[name]["ids"]["64"]
    assert rows[cased[0]][:5] == rows[cased[1]][:5]
  rows = ref["tok_siglip2_without_config"]["ids"]["64"]
  assert rows[cased[0]][:5] != rows[cased[1]][:5]


def test_attributes():
  v1 = text_tokenizer.load(SIGLIP, max_length=64)
  assert (v1.kind, v1.tokenizer_class, v1.lowercase) == (
      "siglip", "SiglipTokenizer", True)
  assert (v1.pad_id, v1.eos_id, v1.bos_id, v1.padding_side) == (1, 1, None, "right")
  v2 = text_tokenizer.load(SIGLIP2, max_length=64)
  assert (v2.kind, v2.tokenizer_class, v2.lowercase) == (
      "siglip2", "Siglip2Tokenizer", True)
  assert (v2.pad_id, v2.eos_id, v2.bos_id, v2.padding_side) == (0, 1, None, "right")
  with open(os.path.join(SIGLIP2, "config.json"), encoding="utf-8") as f:
    assert v2.vocab_size == json.load(f)["text_config"]["vocab_size"]
  for tok in (v1, v2):
    assert tok.encode([]).shape == (0, 64)
    assert int(tok.encode(["a cat 🐱 猫"]).max()) < tok.vocab_size
    with pytest.raises(TypeError, match="sequence of str"):
      tok.encode("a photo of a cat")


def test_refuses_a_folder_without_tokenizer_files(tmp_path):
  with pytest.raises(ValueError, match=r"no spiece\.model or tokenizer\.json in .*the "
                     "text tower needs the checkpoint's tokenizer files"):
    text_tokenizer.load(str(tmp_path), max_length=64)
  with pytest.raises(ValueError, match="is not a folder"):
    text_tokenizer.load(str(tmp_path / "missing"), max_length=64)


def test_refuses_an_unknown_tokenizer_class(tmp_path):
  folder = copy(SIGLIP2, tmp_path / "t", ["config.json"], tokenizer_class="BertTokenizer")
  with pytest.raises(ValueError, match=r"tokenizer_config\.json: tokenizer_class "
                     "'BertTokenizer' is not SigLIP's"):
    text_tokenizer.load(folder, max_length=64)


def test_refuses_a_missing_vocabulary_file(tmp_path):
  """The class named needs its own file: SigLIP spiece.model, SigLIP 2 tokenizer.json."""
  v1 = copy(SIGLIP, tmp_path / "v1", ["spiece.model"])
  shutil.copy(os.path.join(SIGLIP2, "tokenizer.json"), v1)
  with pytest.raises(ValueError, match=r"spiece\.model is missing: "
                     r".*tokenizer_config\.json names SiglipTokenizer"):
    text_tokenizer.load(v1, max_length=64)
  v2 = copy(SIGLIP2, tmp_path / "v2", ["tokenizer.json"])
  shutil.copy(os.path.join(SIGLIP, "spiece.model"), v2)
  with pytest.raises(ValueError, match=r"tokenizer\.json is missing: "
                     ".*model_type siglip2 selects Siglip2Tokenizer"):
    text_tokenizer.load(v2, max_length=64)


def test_refuses_other_models_and_files(tmp_path):
  folder = copy(SIGLIP, tmp_path / "clip")
  with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
    json.dump({"model_type": "clip"}, f)
  with pytest.raises(ValueError, match=r"config\.json: model_type 'clip' is not a "
                     "SigLIP"):
    text_tokenizer.load(folder, max_length=64)
  folder = copy(SIGLIP, tmp_path / "bare", ["config.json", "tokenizer_config.json"])
  with pytest.raises(ValueError, match=r"no tokenizer_config\.json in .*cannot tell "
                     "which tokenizer"):
    text_tokenizer.load(folder, max_length=64)
  folder = copy(SIGLIP, tmp_path / "broken")
  with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    f.write("{not json")
  with pytest.raises(ValueError, match=r"tokenizer_config\.json cannot be read as JSON"):
    text_tokenizer.load(folder, max_length=64)
  folder = copy(SIGLIP, tmp_path / "sampled", sp_model_kwargs={"enable_sampling": True})
  with pytest.raises(ValueError, match="would sample"):
    text_tokenizer.load(folder, max_length=64)
  with pytest.raises(ValueError, match="max_length must be an int >= 2"):
    text_tokenizer.load(SIGLIP, max_length=1)


@pytest.mark.parametrize("folder,package",
                         [(SIGLIP, "sentencepiece"), (SIGLIP2, "tokenizers")])
def test_a_missing_backend_says_what_to_install(folder, package, monkeypatch):
  monkeypatch.setitem(sys.modules, package, None)  # import fails
  with pytest.raises(ImportError, match=f"pip install {package}"):
    text_tokenizer.load(folder, max_length=64)


def test_import_jaxal_imports_neither_backend():
  loaded = "('sentencepiece' in sys.modules, 'tokenizers' in sys.modules)"
  code = (f"import sys, jaxal; a = {loaded}; from jaxal.models import text_tokenizer; "
          f"print(*a, *{loaded})")
  out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), cwd=ROOT,
                       capture_output=True, text=True, check=True).stdout.split()
  assert out == ["False"] * 4, out


# SiglipTokenizer warns on a text that ends with "</s>".
@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:This sequence already has")
def test_against_live_transformers(tmp_path):
  """Random strings through transformers now, also through variants of the folders:
  left padding and truncation (SigLIP 2's class pads left unless told), no
  added_tokens_decoder (legacy files) (needs transformers)."""
  transformers = pytest.importorskip("transformers")
  transformers.logging.set_verbosity_error()
  rng = random.Random(0)
  pool = list("abcXYZ éÉñü.,!?'\"-_<>/\t\n▁") + [
      "</s>", "<unk>", "<pad>", "<eos>", "<bos>", "<start_of_turn>", "猫", "🐱", "👍🏽",
      "\u200d", "\u0301", "ﬁ", "１", "İ", "Σ", "ß", "   "]
  strings = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 20)))
             for _ in range(200)]
  folders = [SIGLIP, SIGLIP2, copy(SIGLIP2, tmp_path / "a", ["config.json"]),
             copy(SIGLIP, tmp_path / "b", padding_side="left", truncation_side="left"),
             copy(SIGLIP2, tmp_path / "c", truncation_side="left", padding_side=DELETE),
             copy(SIGLIP, tmp_path / "d", added_tokens_decoder=DELETE),
             copy(SIGLIP2, tmp_path / "e", added_tokens_decoder=DELETE)]
  for folder in folders:
    ref = transformers.AutoTokenizer.from_pretrained(folder)
    for length in (2, 5, 64):
      want = ref(strings, padding="max_length", max_length=length, truncation=True,
                 return_attention_mask=True)
      ids, mask = text_tokenizer.load(folder, max_length=length).encode_with_mask(strings)
      assert ids.tolist() == want["input_ids"], (folder, length)
      assert mask.tolist() == want["attention_mask"], (folder, length)

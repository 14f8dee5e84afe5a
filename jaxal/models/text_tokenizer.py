"""SigLIP's and SigLIP 2's text tokenizers, read from a checkpoint's folder.

    tok = text_tokenizer.load("siglip2-base-patch16-224", max_length=64)
    ids = tok.encode(["a photo of a cat", "a photo of a dog"])   # int32 [2, 64]

`encode` returns exactly the `input_ids` of Hugging Face transformers'
`tokenizer(texts, padding="max_length", max_length=max_length, truncation=True)`
for the tokenizer `AutoTokenizer.from_pretrained(folder)` builds, the one the
checkpoint's processor uses. `Siglip2Processor` calls it with those very arguments
(`max_length` 64, the text config's `max_position_embeddings`); `SiglipProcessor`
passes the caller's, and transformers' SigLIP documentation asks for
`padding="max_length"`, as the model was trained. No transformers or PyTorch:
SigLIP's through the `sentencepiece` package, SigLIP 2's through the `tokenizers`
package, each imported when a tokenizer of that kind is loaded, never by `import
jaxal`. Checked against transformers 5.23.0 (sentencepiece 0.2.3, tokenizers
0.23.3): tests/data/vit/tokens.json holds its ids, tests/data/make_vit_text.py
writes them.

Which tokenizer (transformers' `AutoTokenizer`, models/auto/tokenization_auto.py).
config.json's `model_type` "siglip2" gives `Siglip2Tokenizer` whatever
tokenizer_config.json's `tokenizer_class` says (siglip2 is in transformers'
`MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS`; the released SigLIP 2 checkpoints
name `GemmaTokenizer`). Otherwise `tokenizer_class` decides, "Fast" suffix
dropped: `SiglipTokenizer` (read from spiece.model), `GemmaTokenizer` or
`Siglip2Tokenizer` (read from tokenizer.json); with no `tokenizer_class`,
model_type "siglip" gives `SiglipTokenizer`. Anything else is refused
(`ValueError` naming the file and what is missing), as are config.json model
types other than SigLIP's and SigLIP 2's.

SigLIP (`SiglipTokenizer`, models/siglip/tokenization_siglip.py; transformers 5
has only this slow, Python class for it). Per text:

  1. "▁" + text with every "▁" replaced by " " (`tokenize`).
  2. Split around the added and special tokens ("</s>", "<unk>", ... as
     tokenizer_config.json's `added_tokens_decoder` and the special tokens list
     them), leftmost-longest; a token marked lstrip/rstrip strips the whitespace
     next to it (PreTrainedTokenizer.tokenize, tokenization_python.py).
  3. Each other piece is canonicalised (`canonicalize_text`, big_vision's
     prompt_engineering.py): lowercased if `do_lower_case` (the default, and the
     checkpoints' setting), ASCII punctuation (`string.punctuation`) removed,
     every run of whitespace made one space, stripped at both ends. Nothing else:
     accents, CJK and emoji stay, and NFKC comes from spiece.model's own
     normaliser.
  4. The piece is encoded as "<unk>" + piece and the pieces of "<unk>" alone are
     dropped from the front (`_tokenize`), a leading lone "▁" before a special
     token is dropped, and pieces become ids (the added tokens' ids first).
  5. Truncated to max_length - 1 (on `truncation_side`, default right), then
     "</s>" is appended unless the ids already end with it, then padded with the
     pad token ("</s>" in the checkpoints: pad id = eos id = 1) on
     `padding_side` (default right). No bos.

SigLIP 2 (`GemmaTokenizer`, models/gemma/tokenization_gemma.py, and
`Siglip2Tokenizer`, models/siglip2/tokenization_siglip2.py). transformers does
not take tokenizer.json's pipeline as it is: it keeps its vocabulary, merges and
post-processor and rebuilds the rest (tokenization_utils_tokenizers.py,
`convert_to_native_format`): a BPE with byte fallback (`fuse_unk`, the unk token
of tokenizer_config.json), normaliser Replace(" " -> "▁"), pre-tokenizer Split on
" " (merged with previous), then the added tokens of tokenizer_config.json's
`added_tokens_decoder` (or, without it, tokenizer.json's) and any special token
not among them. `Siglip2Tokenizer` then puts a Lowercase normaliser first: the
SigLIP 2 models were trained on lowercased text (big_vision), and that is the
only place transformers lowercases for them; `Siglip2Processor` adds nothing to
the text. The bos/eos come from tokenizer.json's post-processor only:
tokenizer_config.json's `add_bos_token`/`add_eos_token` are ignored when a
tokenizer.json is present (tokenization_utils_base.py, `from_pretrained`). The
released checkpoints were written with `add_bos_token=False, add_eos_token=True,
padding_side="right"` (transformers' models/siglip2/convert_siglip2_to_hf.py), so
their post-processor is "$A <eos>": no bos, "<eos>" (id 1) appended; padding with
"<pad>" (id 0) on `padding_side` (the class's own default is "left"); truncation
to max_length - (the post-processor's specials), so the eos stays.

The attention mask. The SigLIP text towers take none: big_vision's model and
transformers' checkpoints (`model_input_names: ["input_ids"]`) run on the padded
ids and pool the last position. `encode_with_mask` still returns the mask
transformers would (1 on the text and its specials, 0 on padding), for a model
that wants one; with pad id = eos id (SigLIP), it cannot be told from the ids.
"""

from __future__ import annotations

import json
import os
import re
import string
from typing import Any, Optional, Sequence

import numpy as np

from jaxal.errors import InputError

SPIECE = "spiece.model"
TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
CONFIG = "config.json"

SIGLIP, SIGLIP2 = "siglip", "siglip2"
# transformers' tokenizer class -> the kind of tokenizer it is.
CLASSES = {"SiglipTokenizer": SIGLIP, "GemmaTokenizer": SIGLIP2,
           "Siglip2Tokenizer": SIGLIP2}
# config.json model types of SigLIP and SigLIP 2 checkpoints (model, text tower).
MODEL_TYPES = (SIGLIP, "siglip_text_model", SIGLIP2, "siglip2_text_model")
# transformers' SPECIAL_TOKENS_ATTRIBUTES, in its order.
_NAMED = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
          "mask_token")
_UNDERLINE = "\u2581"  # SentencePiece's "▁"
_INSTALL = 'pip install {} (or pip install "jaxal[text]")'


class Tokenizer:
  """A checkpoint's text tokenizer (see the module docstring for the rules).

  Attributes:
    folder: the checkpoint folder it was read from.
    kind: "siglip" (SentencePiece, spiece.model) or "siglip2" (Gemma's,
      tokenizer.json).
    tokenizer_class: the transformers class mirrored: "SiglipTokenizer",
      "GemmaTokenizer" or "Siglip2Tokenizer".
    max_length: the length of every row `encode` returns.
    lowercase: whether the text is lowercased before tokenisation.
    pad_id: the padding id.
    eos_id: the id of the end-of-text token, after the text.
    bos_id: the id put before the text, or None (the SigLIP checkpoints: None).
    padding_side: "right" or "left", where the padding goes.
    truncation_side: "right" or "left", where an over-long text is cut.
    vocab_size: ids are below this (the base vocabulary plus added tokens).
  """

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """int32 [len(texts), max_length]: the ids, truncated, with eos, padded."""
    return self.encode_with_mask(texts)[0]

  def encode_with_mask(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask), int32 [len(texts), max_length]; mask is 0 on padding, else 1."""
    if isinstance(texts, (str, bytes)) or not all(isinstance(t, str) for t in texts):
      raise TypeError("texts must be a sequence of str (a list of strings, "
                      "not one string)")
    texts = list(texts)
    if not texts:
      empty = np.zeros((0, self.max_length), np.int32)
      return empty, empty.copy()
    ids, mask = self._encode(texts)
    return np.asarray(ids, np.int32), np.asarray(mask, np.int32)

  def _encode(self, texts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    raise NotImplementedError

  def __repr__(self) -> str:
    return (f"{type(self).__name__}({self.tokenizer_class}, "
            f"max_length={self.max_length}, lowercase={self.lowercase}, "
            f"pad_id={self.pad_id}, eos_id={self.eos_id}, bos_id={self.bos_id}, "
            f"folder={self.folder!r})")


def load(folder: str, *, max_length: int) -> Tokenizer:
  """The tokenizer of the checkpoint in `folder`, encoding to `max_length` ids.

  Args:
    folder: a SigLIP or SigLIP 2 checkpoint folder (Hugging Face layout):
      tokenizer_config.json and spiece.model (SigLIP) or tokenizer.json (SigLIP
      2); config.json and special_tokens_map.json when present.
    max_length: the text tower's sequence length (the text config's
      `max_position_embeddings`, 64 for the released checkpoints), >= 2.

  Raises:
    ValueError: a folder without the files the tokenizer needs, an unknown
      tokenizer class or model type, or a malformed file; the message names it.
    ImportError: sentencepiece (SigLIP) or tokenizers (SigLIP 2) is missing.
  """
  if (isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer))
      or max_length < 2):
    raise InputError("max_length must be an int >= 2 (room for a token and the eos), "
                     f"got {max_length!r}")
  if not os.path.isdir(folder):
    raise InputError(f"{folder} is not a folder: the text tower needs the "
                     "checkpoint's tokenizer files")
  have = {name: os.path.isfile(os.path.join(folder, name))
          for name in (SPIECE, TOKENIZER_JSON)}
  if not any(have.values()):
    raise InputError(f"no {SPIECE} or {TOKENIZER_JSON} in {folder}: the text tower "
                     "needs the checkpoint's tokenizer files")
  config = _read_json(folder, CONFIG) or {}
  tok_config = _read_json(folder, TOKENIZER_CONFIG)
  cls = _tokenizer_class(folder, config, tok_config)
  needs = SPIECE if CLASSES[cls] == SIGLIP else TOKENIZER_JSON
  if not have[needs]:
    raise InputError(f"{os.path.join(folder, needs)} is missing: "
                     f"{_chosen_by(folder, config, tok_config)} {cls}, which reads "
                     f"its vocabulary from {needs}")
  tok_config = dict(tok_config or {})
  if CLASSES[cls] == SIGLIP:
    return _SiglipTokenizer(folder, tok_config, int(max_length))
  return _GemmaTokenizer(folder, tok_config, int(max_length), cls)


# ---------------------------------------------------------------- which tokenizer
def _read_json(folder: str, name: str) -> Optional[dict]:
  path = os.path.join(folder, name)
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      obj = json.load(f)
  except (OSError, ValueError) as e:
    raise InputError(f"{path} cannot be read as JSON: {e}") from None
  if not isinstance(obj, dict):
    raise InputError(f"{path} is not a JSON object")
  return obj


def _tokenizer_class(folder: str, config: dict, tok_config: Optional[dict]) -> str:
  """AutoTokenizer's choice, among the classes mirrored (module docstring)."""
  model_type = config.get("model_type")
  if model_type is not None and model_type not in MODEL_TYPES:
    raise InputError(f"{os.path.join(folder, CONFIG)}: model_type {model_type!r} is "
                     f"not a SigLIP or SigLIP 2 checkpoint's ({', '.join(MODEL_TYPES)})")
  named = (tok_config or {}).get("tokenizer_class")
  if named is None:
    named = config.get("tokenizer_class")  # AutoTokenizer's next source
  if named is not None and not isinstance(named, str):
    raise InputError(f"{os.path.join(folder, TOKENIZER_CONFIG)}: tokenizer_class "
                     "must be a string")
  if model_type == SIGLIP2:
    return "Siglip2Tokenizer"
  if named is None:
    if model_type == SIGLIP:
      return "SiglipTokenizer"
    where = (f"{os.path.join(folder, TOKENIZER_CONFIG)} names no tokenizer_class"
             if tok_config is not None else f"no {TOKENIZER_CONFIG} in {folder}")
    raise InputError(f"{where} and config.json names no SigLIP model_type: cannot "
                     "tell which tokenizer the checkpoint's files are for")
  cls = named[:-4] if named.endswith("Fast") else named
  if cls not in CLASSES:
    raise InputError(f"{os.path.join(folder, TOKENIZER_CONFIG)}: tokenizer_class "
                     f"{named!r} is not SigLIP's (SiglipTokenizer, spiece.model) or "
                     "SigLIP 2's (GemmaTokenizer or Siglip2Tokenizer, tokenizer.json)")
  return cls


def _chosen_by(folder: str, config: dict, tok_config: Optional[dict]) -> str:
  if config.get("model_type") == SIGLIP2:
    return f"{os.path.join(folder, CONFIG)}'s model_type siglip2 selects"
  if (tok_config or {}).get("tokenizer_class"):
    return f"{os.path.join(folder, TOKENIZER_CONFIG)} names"
  return f"{os.path.join(folder, CONFIG)} selects"


def _token_str(value: Any) -> Optional[str]:
  """A token's text from a config value: a string or an AddedToken's dict."""
  if isinstance(value, dict):
    value = value.get("content")
  return value if isinstance(value, str) else None


def _specials(folder: str, tok_config: dict, defaults: dict) -> tuple[dict, dict, list]:
  """(named special tokens, added tokens {id: fields}, extra special tokens).

  As transformers' `from_pretrained` reads them: tokenizer_config.json's values
  over the class's defaults; without `added_tokens_decoder` there (older files),
  special_tokens_map.json's values over both.
  """
  path = os.path.join(folder, TOKENIZER_CONFIG)
  values = dict(tok_config)
  decoder = tok_config.get("added_tokens_decoder")
  if not isinstance(decoder, dict):
    decoder = {}
    values.update(_read_json(folder, SPECIAL_TOKENS_MAP) or {})
  named = {}
  for key in _NAMED:
    value = _token_str(values[key]) if key in values else defaults.get(key)
    if value is not None:
      named[key] = value
  extra = (values.get("additional_special_tokens") or values.get("extra_special_tokens")
           or [])
  if isinstance(extra, dict):
    extra = list(extra.values())
  extra = [t for t in map(_token_str, extra) if t is not None]
  added = {}
  for idx, fields in decoder.items():
    content = _token_str(fields)
    if content is None or not str(idx).isdigit():
      raise InputError(f"{path}: added_tokens_decoder[{idx!r}] is not an id with a "
                       "token's content")
    if content:  # transformers skips empty tokens
      added[int(idx)] = dict(fields) if isinstance(fields, dict) else {"content": content}
  return named, added, extra


def _side(folder: str, tok_config: dict, key: str, default: str) -> str:
  side = tok_config.get(key, default)
  if side not in ("right", "left"):
    raise InputError(f"{os.path.join(folder, TOKENIZER_CONFIG)}: {key} must be "
                     f"'right' or 'left', got {side!r}")
  return side


# ---------------------------------------------------------------- SigLIP
class _SiglipTokenizer(Tokenizer):
  """transformers' SiglipTokenizer over the `sentencepiece` package."""

  def __init__(self, folder: str, tok_config: dict, max_length: int):
    try:
      import sentencepiece  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ImportError("SigLIP's tokenizer (spiece.model) needs the sentencepiece "
                        "package: " + _INSTALL.format("sentencepiece")) from None
    path = os.path.join(folder, TOKENIZER_CONFIG)
    kwargs = tok_config.get("sp_model_kwargs") or {}
    if not isinstance(kwargs, dict) or kwargs.get("enable_sampling"):
      raise InputError(f"{path}: sp_model_kwargs {kwargs!r} would sample the pieces; "
                       "the text tower needs the deterministic ids")
    if tok_config.get("legacy", True) is False:
      raise InputError(f"{path}: legacy=false (no dummy prefix) is not a SigLIP "
                       "checkpoint's setting")
    self._sp = sentencepiece.SentencePieceProcessor(**kwargs)
    self._sp.Load(os.path.join(folder, SPIECE))
    n = self._sp.get_piece_size()

    named, added, extra = _specials(folder, tok_config, {
        "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>"})
    # PreTrainedTokenizer.__init__: the saved added tokens, then each special
    # token not among them (stripping nothing), at its id in the vocabulary.
    self._added = {}  # content -> (id, lstrip, rstrip, single_word)
    lower = tok_config.get("do_lower_case", True)
    for idx, f in sorted(added.items()):
      content = f["content"]
      if not f.get("special", False) and f.get("normalized", True) and lower:
        content = content.lower()  # SentencePieceBackend._add_tokens
      self._added[content] = (idx, bool(f.get("lstrip")), bool(f.get("rstrip")),
                              bool(f.get("single_word")))
    self._special = [t for t in dict.fromkeys(list(named.values()) + extra) if t]
    for token in self._special:
      if token not in self._added:
        idx = self._sp.piece_to_id(token)
        if idx >= n or self._sp.id_to_piece(idx) != token:
          raise InputError(f"{path}: special token {token!r} is neither in {SPIECE} "
                           "nor in added_tokens_decoder")
        self._added[token] = (idx, False, False, False)
    words = sorted(set(self._added) | set(self._special), key=len, reverse=True)
    self._split = re.compile("(" + "|".join(map(re.escape, words)) + ")")

    self.folder, self.kind, self.tokenizer_class = folder, SIGLIP, "SiglipTokenizer"
    self.max_length, self.lowercase = max_length, bool(lower)
    self._unk = named.get("unk_token", "<unk>")
    self._unk_len = len(self._sp.encode(self._unk))
    self.eos_id = self._token_id(named.get("eos_token", "</s>"))
    self.pad_id = self._token_id(named.get("pad_token", "</s>"))
    self.bos_id = None
    self.padding_side = _side(folder, tok_config, "padding_side", "right")
    self.truncation_side = _side(folder, tok_config, "truncation_side", "right")
    self.vocab_size = max([n] + [i + 1 for i, *_ in self._added.values()])
    self._punctuation = str.maketrans("", "", string.punctuation)

  def _token_id(self, token: str) -> int:
    entry = self._added.get(token)
    return entry[0] if entry is not None else self._sp.piece_to_id(token)

  def _canonical(self, text: str) -> str:
    """SiglipTokenizer.canonicalize_text (big_vision's prompt_engineering.py)."""
    if self.lowercase:
      text = text.lower()
    text = text.translate(self._punctuation)
    return re.sub(r"\s+", " ", text).strip()

  def _pieces(self, text: str) -> list[str]:
    """SiglipTokenizer._tokenize: encode "<unk>" + text, drop the unk's pieces."""
    pieces = self._sp.encode(self._unk + self._canonical(text), out_type=str)
    return pieces[self._unk_len:] if len(pieces) >= self._unk_len else pieces

  def _tokens(self, text: str) -> list[str]:
    """SiglipTokenizer.tokenize, PreTrainedTokenizer.tokenize's splitting in it."""
    text = _UNDERLINE + text.replace(_UNDERLINE, " ")
    parts = [p for p in self._split.split(text) if p]
    for i, part in enumerate(parts):
      entry = self._added.get(part)
      if entry is None:
        continue
      _, lstrip, rstrip, single_word = entry
      left = parts[i - 1] if i > 0 else None
      right = parts[i + 1] if i < len(parts) - 1 else None
      if rstrip and right:
        parts[i + 1] = right.lstrip()
      if lstrip and left:
        parts[i - 1] = left.rstrip()
      if single_word:
        if left and left[-1] != " ":
          parts[i - 1] += part
          parts[i] = ""
        elif right and right[0] != " ":
          parts[i + 1] = part + parts[i + 1]
          parts[i] = ""
    tokens = []
    for part in parts:
      if not part:
        continue
      if part in self._added or part in self._special:
        tokens.append(part)
      else:
        tokens.extend(self._pieces(part))
    if len(tokens) > 1 and tokens[0] == _UNDERLINE and tokens[1] in self._special:
      tokens = tokens[1:]
    return tokens

  def _ids(self, text: str) -> list[int]:
    ids = [self._token_id(t) for t in self._tokens(text)]
    over = len(ids) + 1 - self.max_length  # + 1: the eos (prepare_for_model)
    if over > 0:
      ids = ids[over:] if self.truncation_side == "left" else ids[:-over]
    if not ids or ids[-1] != self.eos_id:  # _add_eos_if_not_present
      ids.append(self.eos_id)
    return ids

  def _encode(self, texts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    rows, masks = [], []
    for text in texts:
      ids = self._ids(text)
      pad = self.max_length - len(ids)
      if self.padding_side == "left":
        rows.append([self.pad_id] * pad + ids)
        masks.append([0] * pad + [1] * len(ids))
      else:
        rows.append(ids + [self.pad_id] * pad)
        masks.append([1] * len(ids) + [0] * pad)
    return rows, masks


# ---------------------------------------------------------------- SigLIP 2
class _GemmaTokenizer(Tokenizer):
  """transformers' GemmaTokenizer / Siglip2Tokenizer over the `tokenizers` package."""

  def __init__(self, folder: str, tok_config: dict, max_length: int, cls: str):
    try:
      # pylint: disable=g-import-not-at-top
      import tokenizers
      from tokenizers import normalizers, pre_tokenizers
    except ImportError:
      raise ImportError("SigLIP 2's tokenizer (tokenizer.json) needs the tokenizers "
                        "package: " + _INSTALL.format("tokenizers")) from None
    path = os.path.join(folder, TOKENIZER_JSON)
    tok_json = _read_json(folder, TOKENIZER_JSON)
    model = tok_json.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
      kind = model.get("type") if isinstance(model, dict) else None
      raise InputError(f"{path}: model type {kind!r}; {cls} needs a BPE model "
                       "(Gemma's)")
    vocab, merges = model.get("vocab"), model.get("merges")
    if isinstance(vocab, list):
      vocab = {(t[0] if isinstance(t, list) else t): i for i, t in enumerate(vocab)}
    if not isinstance(vocab, dict) or not isinstance(merges, list):
      raise InputError(f"{path}: the BPE model has no vocab or merges")
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]

    named, added, extra = _specials(folder, tok_config, {
        "unk_token": "<unk>", "bos_token": "<bos>", "eos_token": "<eos>",
        "pad_token": "<pad>", "mask_token": "<mask>"})
    if "added_tokens_decoder" not in tok_config:  # older files: tokenizer.json's
      added = {int(t["id"]): dict(t) for t in tok_json.get("added_tokens") or []
               if t.get("content")}

    # GemmaTokenizer.__init__ (models/gemma/tokenization_gemma.py).
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(
        vocab=vocab, merges=merges, fuse_unk=True, unk_token=named["unk_token"],
        dropout=None, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous",
                                             invert=False)
    tok.normalizer = normalizers.Replace(" ", _UNDERLINE)
    # TokenizersBackend: tokenizer.json's post-processor, read as transformers
    # reads it (from the file with an empty vocabulary).
    minimal = dict(tok_json, added_tokens=[], model=dict(model, vocab={}, merges=[]))
    post = tokenizers.Tokenizer.from_str(json.dumps(minimal)).post_processor
    if post is not None:
      tok.post_processor = post
    # The added tokens by id, then each special token not among them.
    fields = ("content", "single_word", "lstrip", "rstrip", "normalized", "special")
    tokens = []
    for _, f in sorted(added.items()):
      f = {k: f[k] for k in fields if k in f}
      if not f.get("special") and f["content"] in named.values():
        f["special"] = True
      tokens.append(tokenizers.AddedToken(**f))
    have = {t.content for t in tokens}
    for token in list(named.values()) + extra:
      if token and token not in have:
        have.add(token)
        tokens.append(tokenizers.AddedToken(token, special=True))
    tok.add_tokens(tokens)
    tok.encode_special_tokens = bool(tok_config.get("split_special_tokens", False))
    if cls == "Siglip2Tokenizer":  # Siglip2Tokenizer.__init__
      tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), tok.normalizer])

    self.folder, self.kind, self.tokenizer_class = folder, SIGLIP2, cls
    self.max_length, self.lowercase = max_length, cls == "Siglip2Tokenizer"
    pad = named.get("pad_token")
    self.pad_id = tok.token_to_id(pad) if pad is not None else None
    if self.pad_id is None:
      raise InputError(f"{os.path.join(folder, TOKENIZER_CONFIG)}: no pad token in "
                       "the vocabulary (padding to max_length needs one)")
    self.eos_id = tok.token_to_id(named.get("eos_token", "<eos>"))
    bos = tok.token_to_id(named.get("bos_token", "<bos>"))
    self.bos_id = bos if bos is not None and bos in tok.encode("").ids else None
    # The class's own padding side is "left".
    self.padding_side = _side(folder, tok_config, "padding_side", "left")
    self.truncation_side = _side(folder, tok_config, "truncation_side", "right")
    self.vocab_size = tok.get_vocab_size(with_added_tokens=True)
    # set_truncation_and_padding (tokenization_utils_tokenizers.py).
    tok.enable_truncation(max_length, stride=0, strategy="longest_first",
                          direction=self.truncation_side)
    tok.enable_padding(direction=self.padding_side, pad_id=self.pad_id, pad_type_id=0,
                       pad_token=pad, length=max_length)
    self._tok = tok

  def _encode(self, texts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    encodings = self._tok.encode_batch(texts, add_special_tokens=True)
    return [e.ids for e in encodings], [e.attention_mask for e in encodings]

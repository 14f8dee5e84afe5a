"""Writes tests/data/vit/tok_siglip/, tok_siglip2/ and tokens.json: SigLIP and
SigLIP 2 tokenizer folders made on the spot, and transformers' ids for them.

    .venv/bin/python tests/data/make_vit_text.py [OUT_DIR]    (needs transformers,
                                                               sentencepiece, tokenizers)

No download: both tokenizers are trained here, with the `sentencepiece` trainer,
on the small multilingual corpus below (English captions, accented Latin,
Greek/Cyrillic, CJK, emoji), and laid out as the real checkpoints are.

tok_siglip/ (SigLIP v1, e.g. google/siglip-base-patch16-224). The real spiece.model
is T5's English SentencePiece (big_vision's "c4_en"): a unigram model, NFKC
("nmt_nfkc") normalisation, a dummy "▁" prefix, extra whitespace removed, no byte
fallback; ids 0 <pad>, 1 </s>, 2 <unk>, no bos. Its tokenizer_config.json names
`SiglipTokenizer` (do_lower_case, pad = eos = "</s>", model_max_length 64) and
lists </s> and <unk> as special tokens that strip the spaces around them
(lstrip/rstrip), as special_tokens_map.json does.

tok_siglip2/ (SigLIP 2, e.g. google/siglip2-base-patch16-224). The real tokenizer
is Gemma's: a BPE SentencePiece model with byte fallback, no normalisation, no
dummy prefix, digits split, whitespace-only pieces allowed; ids 0 <pad>, 1 <eos>,
2 <bos>, 3 <unk>, then <mask>, <2mass>, [@BOS@], <unusedN>, <start_of_turn>,
<end_of_turn> and runs of newlines and spaces as user-defined symbols, then the
256 byte pieces. transformers' own converter (`GemmaConverter`, the entry of
`SLOW_TO_FAST_CONVERTERS`) turns the trained model into tokenizer.json, and
transformers' `GemmaTokenizer` then sets what transformers'
models/siglip2/convert_siglip2_to_hf.py sets for the released checkpoints
(`add_bos_token=False, add_eos_token=True, padding_side="right",
model_input_names=["input_ids"]`): tokenizer.json's post-processor appends
<eos> and adds no <bos>. tokenizer_config.json is written as those checkpoints
have it (transformers 4.x's layout: `tokenizer_class: GemmaTokenizer`, the
added tokens, add_bos/add_eos).

Each folder also holds a small config.json (`model_type` and a few text-tower
fields: max_position_embeddings, vocab_size, the special ids): `AutoTokenizer` reads the
model type from it, and for "siglip2" it loads `Siglip2Tokenizer` (Gemma's
tokenizer plus a Lowercase normaliser) instead of the `GemmaTokenizer` that
tokenizer_config.json names.

tokens.json records, for every string of `STRINGS` at max_length 16 and 64,
`tokenizer(strings, padding="max_length", max_length=L, truncation=True)`
(input_ids, and the row sums of attention_mask) of `AutoTokenizer.from_pretrained`
on tok_siglip/ (SiglipTokenizer; transformers 5 has no other class for SigLIP:
`SiglipTokenizerFast` is the same class), on tok_siglip2/ (Siglip2Tokenizer) and
on tok_siglip2/ without its config.json (GemmaTokenizer, as tokenizer_config.json
names it: no lowercasing), plus the versions and date. Training is deterministic
(one thread): a rerun writes the same vocabularies and ids.
Nothing here is imported by the tests: its outputs are.
"""

import datetime
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import types
import unicodedata
import warnings

import sentencepiece as spm
import tokenizers
import transformers
from transformers import AutoTokenizer, GemmaTokenizer
from transformers.utils import logging as hf_logging
from transformers.convert_slow_tokenizer import (SLOW_TO_FAST_CONVERTERS,
                                                 GemmaSentencePieceExtractor)

# SiglipTokenizer warns when a text already ends with "</s>" (one of STRINGS does).
warnings.filterwarnings("ignore", message="This sequence already has")
HERE = os.path.dirname(os.path.abspath(__file__))
LENGTHS = (16, 64)

# ---------------------------------------------------------------- corpus
_NOUNS_EN = [
    "cat", "dog", "bird", "horse", "car", "truck", "airplane", "ship", "frog",
    "deer", "golden retriever", "tabby cat", "red fox", "snow leopard", "bicycle",
    "motorcycle", "school bus", "fire truck", "sailboat", "teapot", "coffee mug",
    "laptop", "keyboard", "umbrella", "backpack", "pizza", "banana", "apple",
    "orange", "broccoli", "sandwich", "hot dog", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "television", "clock", "vase",
    "scissors", "teddy bear", "toothbrush", "giraffe", "zebra", "elephant",
    "bear", "sheep", "cow", "mushroom", "lighthouse", "castle", "bridge",
    "mountain", "river", "beach", "forest", "desert",
]
_TEMPLATES_EN = [
    "a photo of a {}.", "a blurry photo of a {}.", "a close-up photo of the {}.",
    "This is a photo of a {}", "an origami {}", "a drawing of a {}!",
    "A bright photo of a small {}.", "itap of my {}", "a sculpture of a {}, outdoors",
]
_ADJECTIVES = [
    "small", "large", "red", "blue", "green", "yellow", "black", "white", "old",
    "young", "wooden", "metal", "plastic", "shiny", "dirty", "clean", "broken",
    "beautiful", "strange", "famous", "sleeping", "running", "flying", "hungry",
]
_PLACES = [
    "in the kitchen", "on the street", "at the zoo", "under the table", "near a window",
    "in a museum", "on a mountain", "by the river", "in the snow", "at night",
    "during sunset", "in the rain", "inside a box", "next to a tree",
]
_PROSE = """
The quick brown fox jumps over the lazy dog while the farmer watches from his tractor.
Scientists discovered a new species of butterfly in the tropical rainforest last summer.
My grandmother bakes delicious chocolate cookies every Sunday for the neighbours.
Heavy traffic delayed thousands of commuters after yesterday's thunderstorm.
The orchestra performed a symphony by Beethoven in the magnificent concert hall downtown.
Engineers are building a suspension bridge across the harbour to connect both islands.
Children in colourful costumes paraded through the village at the harvest festival.
A lonely astronaut floated above the planet, photographing glaciers and volcanoes.
The museum exhibits ancient pottery, medieval armour, and paintings from the renaissance.
Fresh vegetables, ripe strawberries and homemade bread were sold at the market.
Photographers gathered at dawn to capture the migration of flamingos across the lagoon.
The librarian recommended a mystery novel, a biography, and a guide to gardening.
Waiters carried steaming bowls of noodle soup through the crowded restaurant at lunchtime.
Firefighters rescued a frightened kitten from the roof of an abandoned warehouse.
Mathematics, chemistry, geography and literature are taught by enthusiastic teachers.
The penguin waddled across the icy shore before diving into the freezing ocean water.
Tourists admired the cathedral's stained glass windows and climbed the narrow staircase.
An enormous whale surfaced beside the fishing boat, spraying water into the air.
Volunteers planted hundreds of oak, maple, birch and pine trees along the riverbank.
The detective examined fingerprints, footprints and a torn envelope on the carpet.
Bakers, butchers, carpenters, plumbers and electricians work in the small town.
Kangaroos, koalas, wombats and platypuses live in different regions of Australia.
Satellites, telescopes and microscopes help researchers observe distant and tiny worlds.
The submarine descended towards the coral reef, illuminating jellyfish and octopuses.
Cyclists raced through the mountains, while spectators cheered from the winding roads.
A violin, a trumpet, a saxophone, a drum and a piano stood on the empty stage.
Le boulanger prépare des croissants dorés et des baguettes croustillantes avant l'aube.
Les élèves étudient l'histoire, la géographie et les sciences naturelles au lycée.
Nous avons visité un château médiéval entouré de vignobles et de forêts profondes.
La cuisinière découpe des légumes frais pour préparer une soupe épicée et savoureuse.
Un écureuil grignote des noisettes sur la branche d'un vieux chêne près du ruisseau.
Après la pluie, l'arc-en-ciel illumine les toits de la ville et les collines lointaines.
El pescador regresó al puerto con una red llena de sardinas, atunes y calamares.
Los músicos tocaron guitarras, violines y tambores durante la celebración del pueblo.
Mi hermana pequeña dibuja mariposas, flores y estrellas en su cuaderno favorito.
Caminamos por el sendero de la montaña hasta llegar a una cascada escondida.
La biblioteca municipal ofrece talleres de lectura, escritura y fotografía gratuitos.
El médico recomendó descansar, beber agua y comer frutas durante la recuperación.
Der Bäcker verkauft frische Brötchen, Brezeln und Kuchen in seiner gemütlichen Bäckerei.
Im Winter fahren viele Familien in die Berge, um Ski zu fahren und Schneemänner zu bauen.
Die Wissenschaftlerin untersucht Pflanzen, Insekten und Vögel im tropischen Regenwald.
Unser Nachbar repariert Fahrräder, Motorräder und alte Uhren in seiner Werkstatt.
Der Zug nach Hamburg fährt pünktlich um halb acht vom Hauptbahnhof ab.
Auf dem Wochenmarkt gibt es Äpfel, Birnen, Kartoffeln, Käse und frischen Fisch.
O jardineiro plantou rosas, girassóis e orquídeas no jardim da casa amarela.
Os turistas fotografaram as praias, as igrejas antigas e os mercados coloridos.
Il gatto dorme sul divano mentre la nonna prepara la pasta fatta in casa.
De molen draait langzaam terwijl koeien grazen in het groene weiland bij de dijk.
Vi åt kanelbullar och drack kaffe i en liten stuga vid sjön i skogen.
Rainbows, hurricanes, earthquakes and avalanches fascinate young meteorologists.
The architect sketched skyscrapers, apartments, cottages and lighthouses on tracing paper.
Our neighbour's parrot imitates the doorbell, the telephone and the microwave perfectly.
Pilots, sailors, soldiers, nurses and journalists described their unusual adventures.
Blueberries, raspberries, cherries, peaches, plums and watermelons ripen in July.
A hedgehog, a squirrel, a rabbit and an owl shared the hollow beneath the willow.
Dragonflies hovered above the pond where turtles basked on a floating log.
The blacksmith hammered glowing iron into horseshoes, nails, hinges and swords.
Abbiamo mangiato pizza, gelato e tiramisù in una piccola trattoria vicino al porto.
""".strip().splitlines()
_ACCENTED = [
    "une photo d'un chat", "la photo d'un chien très mignon", "un café au lait",
    "le garçon mange une crème brûlée", "une fenêtre près de la forêt", "l'été à Noël",
    "naïve façade, déjà vu", "où est la bibliothèque ?", "à côté de l'hôpital",
    "una foto de un niño", "el señor come paella en España", "mañana por la mañana",
    "¿dónde está el baño?", "¡qué bonito día!", "pingüino en la nieve", "canción de cuna",
    "ein Foto von einer Katze", "die Straße ist groß", "über den Brücken",
    "Grüße aus München", "schöne Mädchen und Jungen", "Fußball im Garten",
    "uma foto de um cão", "ação e reação",
    "pão de queijo", "coração", "São Paulo à noite", "Tiếng Việt rất đẹp", "phở bò",
    "Ελληνικά γράμματα", "μια φωτογραφία μιας γάτας", "фотография кошки", "Привет, мир",
    "собака на пляже", "Dvořák a Smetana", "Łódź i Kraków", "İstanbul'da çay",
    "smørrebrød",
    "Ærø og Øresund", "Ångström", "Þórsmörk", "crème fraîche", "jalapeño", "açaí",
]
_CJK = [
    "猫の写真", "犬の写真です", "一只猫的照片", "一只狗在草地上", "这是一张狗的照片",
    "我喜欢吃苹果", "東京の夜景", "富士山と桜", "고양이 사진", "강아지가 공원에서 뛰어요",
    "서울의 밤", "日本語のテキスト", "ひらがなとカタカナ", "中文和日本語", "北京烤鸭",
    "寿司とラーメン", "熊猫在吃竹子", "山と川と海", "一只红色的鸟", "白い猫と黒い犬",
    "사과와 바나나", "汽车和自行车", "图书馆里的书", "春夏秋冬", "雨の日の傘",
]
_EMOJI = [
    "a cat 🐱", "a dog 🐶", "pizza 🍕 and beer 🍺", "I ❤️ cats", "sun ☀️ and rain 🌧️",
    "party 🎉🎉", "family 👨‍👩‍👧‍👦", "thumbs up 👍🏽", "flag 🇫🇷", "rocket 🚀 to the moon 🌕",
    "😀 happy face", "😂 laughing", "🐍 python", "🌸 cherry blossom", "🍎🍌🍇",
    "🏳️‍🌈 rainbow flag", "👩🏾‍💻 coder", "⭐ star", "🔥 fire", "🎵 music",
]
_MISC = [
    "A PHOTO OF A CAT", "The Quick Brown Fox Jumps Over The Lazy Dog.",
    "hello, world! (it's) \"quoted\" — dash… ok?", "C'est l'été; n'est-ce pas?",
    "price: $3.50 / 2 items = 50% off", "numbers 0 1 2 3 4 5 6 7 8 9 10 100 2024",
    "e-mail: someone@example.com", "3.14159 and 2.71828", "tab\tseparated\tvalues",
    "line one\nline two", "  indented text", "multiple   spaces   here",
    "<b>bold</b> and <table> tags", "ＡＢＣ full width １２３", "the ﬁle and the ﬂag",
    "x² + y² = z²", "½ cup of sugar", "№ 5", "under_score and dash-case",
]


def corpus() -> list[str]:
  lines = [t.format(n) for n in _NOUNS_EN for t in _TEMPLATES_EN]
  lines += [f"a {a} {n} {p}" for i, (a, n) in enumerate(
      (a, n) for a in _ADJECTIVES for n in _NOUNS_EN) for p in _PLACES[i % 5::5]]
  lines += _PROSE * 3 + [p.lower() for p in _PROSE]
  lines += _ACCENTED * 3 + _CJK * 3 + _EMOJI * 2 + _MISC * 2
  lines += [s.lower() for s in _ACCENTED + _MISC]
  return lines


# ---------------------------------------------------------------- test strings
LONG = ("a very long caption about a golden retriever playing with a red ball on "
        "a sunny beach near the old lighthouse while seagulls fly above the waves "
        "and children build sand castles, " * 3).strip()
STRINGS = [
    "a photo of a cat",
    "A Photo Of A CAT!",
    "golden retriever",
    "café", "naïve façade", "niño mañana", "über Straße",
    unicodedata.normalize("NFD", "café"), unicodedata.normalize("NFD", "niño ü"),
    "Tiếng Việt", "Привет, мир", "Ελληνικά",
    "猫の写真", "一只狗在草地上", "고양이 사진", "中文 and English 混合",
    "🐱", "dog 🐶 and cat 🐱", "family 👨‍👩‍👧‍👦", "thumbs 👍🏽", "🇫🇷 flag", "🏳️‍🌈",
    "hello, world! (it's) \"quoted\" — dash… ¿qué? ¡sí!",
    "C'est l'été.", "under_score", "e-mail@x.com", "3.14 and 12345",
    "GOLDEN RETRIEVER", "ÉCOLE ÜBER",
    "  leading spaces", "trailing spaces  ", "multiple   inner    spaces",
    " ", "   ", "\ttab and\nnewline", "",
    "ＡＢＣ１２３", "the ﬁle", "x² ½",
    "a ▁ block", "</s>", "a </s> b", "<unk> here", "<eos>", "x <pad> y",
    "<start_of_turn>user", "<b>bold</b>",
    LONG,
]


# ---------------------------------------------------------------- folders
def write_json(path: str, obj) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(obj, f, ensure_ascii=False, indent=2, sort_keys=True)
    f.write("\n")


def train(lines: list[str], prefix: str, **kw) -> None:
  """sentencepiece's trainer on `lines`, writing PREFIX.model (quietly)."""
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(lines), model_prefix=prefix, hard_vocab_limit=False,
      num_threads=1, minloglevel=2, **kw)


def _added(content: str, special: bool, strip: bool = False) -> dict:
  return {"content": content, "lstrip": strip, "normalized": False, "rstrip": strip,
          "single_word": False, "special": special}


def make_siglip(out: str, lines: list[str]) -> None:
  os.makedirs(out, exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    train(lines, os.path.join(tmp, "sp"), model_type="unigram", vocab_size=1000,
          character_coverage=0.995, normalization_rule_name="nmt_nfkc",
          add_dummy_prefix=True, remove_extra_whitespaces=True, byte_fallback=False,
          pad_id=0, pad_piece="<pad>", eos_id=1, eos_piece="</s>", unk_id=2,
          unk_piece="<unk>", bos_id=-1)
    shutil.copy(os.path.join(tmp, "sp.model"), os.path.join(out, "spiece.model"))
  vocab = spm.SentencePieceProcessor(model_file=os.path.join(out, "spiece.model"))
  write_json(os.path.join(out, "tokenizer_config.json"), {
      "added_tokens_decoder": {"1": _added("</s>", True, True),
                               "2": _added("<unk>", True, True)},
      "additional_special_tokens": [],
      "clean_up_tokenization_spaces": True,
      "do_lower_case": True,
      "eos_token": "</s>",
      "model_input_names": ["input_ids"],
      "model_max_length": 64,
      "pad_token": "</s>",
      "processor_class": "SiglipProcessor",
      "sp_model_kwargs": {},
      "tokenizer_class": "SiglipTokenizer",
      "unk_token": "<unk>",
  })
  strip = {k: v for k, v in _added("", True, True).items() if k != "special"}
  write_json(os.path.join(out, "special_tokens_map.json"), {
      "eos_token": dict(strip, content="</s>"),
      "pad_token": dict(strip, content="</s>"),
      "unk_token": dict(strip, content="<unk>"),
  })
  write_json(os.path.join(out, "config.json"), {
      "model_type": "siglip",
      "text_config": {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 1,
                      "max_position_embeddings": 64,
                      "vocab_size": vocab.get_piece_size()},
  })


GEMMA_USER_SYMBOLS = (
    ["<mask>", "<2mass>", "[@BOS@]"] + [f"<unused{i}>" for i in range(6)] +
    ["<start_of_turn>", "<end_of_turn>"] + ["\n" * k for k in range(1, 5)] +
    ["▁" * k for k in range(2, 6)] + ["<table>", "<b>", "</b>"])


def _gemma_converter():
  """transformers' GemmaConverter; 5.23's GemmaSentencePieceExtractor reads a
  `self.sp` that its base class no longer sets, so this sets it (nothing else)."""

  class Extractor(GemmaSentencePieceExtractor):

    def __init__(self, model: str):
      super().__init__(model)
      self.sp = spm.SentencePieceProcessor(model_file=model)

  base = SLOW_TO_FAST_CONVERTERS["GemmaTokenizer"]
  return type(base.__name__, (base,), {"SpmExtractor": Extractor})


def make_siglip2(out: str, lines: list[str]) -> None:
  os.makedirs(out, exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    prefix = os.path.join(tmp, "tokenizer")
    train(lines, prefix, model_type="bpe", vocab_size=1200, character_coverage=0.9995,
          normalization_rule_name="identity", add_dummy_prefix=False,
          remove_extra_whitespaces=False, byte_fallback=True, split_digits=True,
          allow_whitespace_only_pieces=True, pad_id=0, pad_piece="<pad>", eos_id=1,
          eos_piece="<eos>", bos_id=2, bos_piece="<bos>", unk_id=3, unk_piece="<unk>",
          user_defined_symbols=GEMMA_USER_SYMBOLS)
    shim = types.SimpleNamespace(vocab_file=prefix + ".model", pad_token="<pad>",
                                 eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
                                 add_prefix_space=False)
    backend = _gemma_converter()(shim).converted()
  tok = GemmaTokenizer(tokenizer_object=backend, add_bos_token=False, add_eos_token=True,
                       padding_side="right", model_input_names=["input_ids"])
  tok.backend_tokenizer.save(os.path.join(out, "tokenizer.json"))
  with open(os.path.join(out, "tokenizer.json"), encoding="utf-8") as f:
    tj = json.load(f)
  assert tj["post_processor"]["single"] == [  # "$A <eos>": no bos, eos appended
      {"Sequence": {"id": "A", "type_id": 0}},
      {"SpecialToken": {"id": "<eos>", "type_id": 0}}]
  decoder = {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                              "single_word", "special")}
             for t in tj["added_tokens"]}
  write_json(os.path.join(out, "tokenizer_config.json"), {
      "add_bos_token": False,
      "add_eos_token": True,
      "added_tokens_decoder": decoder,
      "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
      "bos_token": "<bos>",
      "clean_up_tokenization_spaces": False,
      "eos_token": "<eos>",
      "extra_special_tokens": {},
      "mask_token": "<mask>",
      "model_input_names": ["input_ids"],
      "model_max_length": 1000000000000000019884624838656,
      "pad_token": "<pad>",
      "padding_side": "right",
      "processor_class": "Siglip2Processor",
      "sp_model_kwargs": {},
      "spaces_between_special_tokens": False,
      "tokenizer_class": "GemmaTokenizer",
      "unk_token": "<unk>",
      "use_default_system_prompt": False,
  })
  plain = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
  write_json(os.path.join(out, "special_tokens_map.json"), {
      "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
      **{f"{k}_token": dict(plain, content=f"<{k}>")
         for k in ("bos", "eos", "mask", "pad", "unk")},
  })
  write_json(os.path.join(out, "config.json"), {
      "model_type": "siglip2",
      "text_config": {"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
                      "max_position_embeddings": 64,
                      "vocab_size": len(tj["model"]["vocab"])},
  })


def reference(tok) -> dict:
  """The class, and per max_length the ids and the attention mask's row sums."""
  out = {"class": type(tok).__name__, "padding_side": tok.padding_side, "ids": {},
         "lengths": {}}
  for n in LENGTHS:
    enc = tok(STRINGS, padding="max_length", max_length=n, truncation=True,
              return_attention_mask=True)
    rows = [list(map(int, row)) for row in enc["input_ids"]]
    assert all(len(row) == n for row in rows), "not padded/truncated to max_length"
    out["ids"][str(n)] = rows
    out["lengths"][str(n)] = [int(sum(m)) for m in enc["attention_mask"]]
  return out


def dump(path: str, obj) -> None:
  """JSON, ASCII-escaped (the strings hold combining marks, ZWJ, tabs), one
  list of ids per line."""
  text = json.dumps(obj, ensure_ascii=True, indent=1, sort_keys=True)
  text = re.sub(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]",
                lambda m: "[" + re.sub(r",\s*", ",", m.group(1)) + "]", text)
  with open(path, "w", encoding="ascii") as f:
    f.write(text + "\n")


def main(out: str) -> None:
  hf_logging.set_verbosity_error()  # the configs' default CLIP bos/eos ids, warned about
  lines = corpus()
  sig, sig2 = os.path.join(out, "tok_siglip"), os.path.join(out, "tok_siglip2")
  make_siglip(sig, lines)
  make_siglip2(sig2, lines)

  auto1 = AutoTokenizer.from_pretrained(sig)
  auto2 = AutoTokenizer.from_pretrained(sig2)
  with tempfile.TemporaryDirectory() as tmp:  # the same files without config.json
    bare = os.path.join(tmp, "tok_siglip2")
    shutil.copytree(sig2, bare, ignore=shutil.ignore_patterns("config.json"))
    auto2_bare = AutoTokenizer.from_pretrained(bare)
    refs = {"tok_siglip": reference(auto1), "tok_siglip2": reference(auto2),
            "tok_siglip2_without_config": reference(auto2_bare)}
  assert refs["tok_siglip"]["class"] == "SiglipTokenizer", refs["tok_siglip"]["class"]
  assert refs["tok_siglip2"]["class"] == "Siglip2Tokenizer", refs["tok_siglip2"]["class"]
  assert refs["tok_siglip2_without_config"]["class"] == "GemmaTokenizer"
  # The class tokenizer_config.json names, called directly, is the same tokenizer.
  assert reference(GemmaTokenizer.from_pretrained(sig2))["ids"] == refs[
      "tok_siglip2_without_config"]["ids"]
  dump(os.path.join(out, "tokens.json"), {
      "about": ("tokenizer(strings, padding='max_length', max_length=L, truncation=True) "
                "of AutoTokenizer.from_pretrained(tok_siglip | tok_siglip2 | tok_siglip2 "
                "without its config.json): input_ids, and the row sums of attention_mask "
                "(lengths); written by tests/data/make_vit_text.py"),
      "date": datetime.date.today().isoformat(),
      "versions": {"python": platform.python_version(),
                   "transformers": transformers.__version__,
                   "sentencepiece": spm.__version__,
                   "tokenizers": tokenizers.__version__},
      "strings": STRINGS,
      "reference": refs,
  })
  for name in ("tok_siglip", "tok_siglip2"):
    d = os.path.join(out, name)
    print(name, {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))})
  print("tokens.json", os.path.getsize(os.path.join(out, "tokens.json")))


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "vit"))

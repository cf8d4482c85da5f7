"""Tokenizers: characters for Mandarin, sentencepiece BPE for English.

The reserved token ids (``<blank>``, ``<unk>``, ``<sos/eos>``, ``<mask>``) are defined in
:mod:`kdlab.tokens` and re-exported here; regular tokens start at ``NUM_SPECIAL``.

The paper (Sec. 4.1) models AISHELL-1 with 4,233 characters and LibriSpeech with 5,000 BPE units; the
embedded mini corpora use the same two tokenizer kinds at a few hundred units.
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from kdlab.tokens import BLANK, IGNORE_ID, MASK, NUM_SPECIAL, SOS_EOS, SPECIAL_PIECES, UNK  # noqa: F401

UNK_SURFACE = "\u2047"  # "⁇": one character, so an unknown token counts as one CER unit
CONFIG_NAME = "tokenizer.json"
LANGS = ("en", "zh")

_EN_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})  # ’ ‘ ʼ -> '
_SPACES = re.compile(r"\s+")


def _en_char(ch: str) -> str:
    """One English character after accent stripping: letters, digits, apostrophes and symbols (emoji,
    currency, maths: out of vocabulary for the tokenizer) stay; punctuation, controls, spaces -> space."""
    if ch == "'":
        return ch
    cat = unicodedata.category(ch)
    return ch if cat[0] in "LNS" else " "


def strip_accents(text: str) -> str:
    """NFKD, then drop combining marks: "ÉCOLE naïve" -> "ECOLE naive"; compatibility forms are unfolded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))


def normalize_text(text: str, lang: str) -> str:
    """Normalise a transcript the same way for training, decoding and scoring.

    ``en``: NFKD with accents stripped, lower case, typographic apostrophes -> ``'``; punctuation and
    controls become spaces, single spaces. Letters outside a-z (``ß``, Cyrillic) and symbols (emoji,
    ``€``, ``+``) are kept, so the tokenizer maps them to ``<unk>`` and they count as OOV.
    ``zh``: NFKC, lower case (for embedded Latin letters), punctuation, symbols and all spaces removed.
    """
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; expected one of {LANGS}")
    if lang == "en":
        text = strip_accents(text).lower().translate(_EN_APOSTROPHES)
        return _SPACES.sub(" ", "".join(_en_char(ch) for ch in text)).strip()
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


class _Base:
    """Shared behaviour; subclasses set ``kind``/``unit`` and implement the piece mapping."""

    kind: str = ""
    unit: str = ""

    def __init__(self, lang: str) -> None:
        if lang not in LANGS:
            raise ValueError(f"unknown language {lang!r}; expected one of {LANGS}")
        self.lang = lang

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def id_to_piece(self, i: int) -> str:
        raise NotImplementedError

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        """Drop padding/blank/<sos/eos>/<mask>; reject ids outside the vocabulary."""
        kept = []
        for i in ids:
            i = int(i)
            if i >= self.vocab_size or i < IGNORE_ID:
                raise ValueError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
            if i in (IGNORE_ID, BLANK, SOS_EOS, MASK):
                continue
            kept.append(i)
        return kept

    def _write_config(self, out_dir: Path, extra: dict) -> None:
        cfg = {"kind": self.kind, "lang": self.lang, "vocab_size": self.vocab_size, **extra}
        (out_dir / CONFIG_NAME).write_text(json.dumps(cfg, ensure_ascii=False, indent=1) + "\n")


class CharTokenizer(_Base):
    """One token per character (spaces dropped); scored with CER."""

    kind = "char"
    unit = "char"

    def __init__(self, chars: Sequence[str], lang: str = "zh") -> None:
        super().__init__(lang)
        bad = [c for c in chars if len(c) != 1]
        if bad or len(set(chars)) != len(chars):
            raise ValueError(f"character list must hold distinct single characters; bad: {bad[:5]}")
        self.chars = list(chars)
        self._index = {c: i + NUM_SPECIAL for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, texts: Iterable[str], lang: str = "zh", min_count: int = 1,
              max_size: int | None = None) -> CharTokenizer:
        """Vocabulary = characters seen ``min_count`` times, most frequent first (ties by code point)."""
        counts = Counter(ch for t in texts for ch in normalize_text(t, lang).replace(" ", ""))
        ranked = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
        if not ranked:
            raise ValueError("cannot train a character tokenizer: no characters in the training text")
        return cls(ranked[:max_size] if max_size else ranked, lang=lang)

    @property
    def vocab_size(self) -> int:
        return NUM_SPECIAL + len(self.chars)

    def id_to_piece(self, i: int) -> str:
        if 0 <= i < NUM_SPECIAL:
            return SPECIAL_PIECES[i]
        if i < self.vocab_size:
            return self.chars[i - NUM_SPECIAL]
        raise IndexError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")

    def encode(self, text: str) -> list[int]:
        return [self._index.get(ch, UNK) for ch in normalize_text(text, self.lang).replace(" ", "")]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(UNK_SURFACE if i == UNK else self.chars[i - NUM_SPECIAL] for i in self._check_ids(ids))

    def save(self, out_dir: str | Path) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self._write_config(out_dir, {"chars": self.chars})
        tokens = list(SPECIAL_PIECES) + self.chars  # ESPnet-style token list, for reading only
        (out_dir / "tokens.txt").write_text("".join(f"{t} {i}\n" for i, t in enumerate(tokens)))


class BPETokenizer(_Base):
    """Sentencepiece BPE over lower-cased text; sentencepiece's own ids equal ours (pieces from 4)."""

    kind = "bpe"
    unit = "word"
    MODEL_NAME = "bpe.model"

    def __init__(self, model_proto: bytes, lang: str = "en") -> None:
        import sentencepiece as spm

        super().__init__(lang)
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        pieces = tuple(self.sp.id_to_piece(i) for i in range(NUM_SPECIAL))
        if pieces != SPECIAL_PIECES:
            raise ValueError(f"sentencepiece model has reserved pieces {pieces}, expected {SPECIAL_PIECES}")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 300, lang: str = "en",
              seed: int = 0) -> BPETokenizer:
        """Train deterministically (one thread, no sampling); ``vocab_size`` is a soft upper limit."""
        import sentencepiece as spm

        lines = [t for t in (normalize_text(x, lang) for x in texts) if t]
        if not lines:
            raise ValueError("cannot train a BPE tokenizer: the training text is empty")
        spm.set_random_generator_seed(seed)
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=buf, model_type="bpe", vocab_size=vocab_size,
            hard_vocab_limit=False, character_coverage=1.0, num_threads=1, input_sentence_size=0,
            shuffle_input_sentence=False, pad_id=BLANK, pad_piece=SPECIAL_PIECES[BLANK], unk_id=UNK,
            unk_piece=SPECIAL_PIECES[UNK], bos_id=SOS_EOS, bos_piece=SPECIAL_PIECES[SOS_EOS], eos_id=-1,
            control_symbols=[SPECIAL_PIECES[MASK]], unk_surface=UNK_SURFACE, minloglevel=2,
        )
        return cls(buf.getvalue(), lang=lang)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def id_to_piece(self, i: int) -> str:
        if not 0 <= i < self.vocab_size:
            raise IndexError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return self.sp.id_to_piece(i)

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(normalize_text(text, self.lang), out_type=int))

    def decode(self, ids: Iterable[int]) -> str:
        return _SPACES.sub(" ", self.sp.decode(self._check_ids(ids))).strip()

    def save(self, out_dir: str | Path) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / self.MODEL_NAME).write_bytes(self.model_proto)
        self._write_config(out_dir, {"model": self.MODEL_NAME})
        pieces = [self.sp.id_to_piece(i) for i in range(self.vocab_size)]
        (out_dir / "tokens.txt").write_text("".join(f"{p} {i}\n" for i, p in enumerate(pieces)))


Tokenizer = CharTokenizer | BPETokenizer


def train_tokenizer(texts: Iterable[str], lang: str, vocab_size: int = 300, seed: int = 0) -> Tokenizer:
    """The paper's choice per language: characters for Mandarin, BPE for English."""
    if lang == "zh":
        return CharTokenizer.train(texts, lang=lang)
    return BPETokenizer.train(texts, vocab_size=vocab_size, lang=lang, seed=seed)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer saved with ``save(dir)``."""
    path = Path(path)
    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: no tokenizer saved here")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("kind") == "char":
        tok: Tokenizer = CharTokenizer(cfg["chars"], lang=cfg["lang"])
    elif cfg.get("kind") == "bpe":
        tok = BPETokenizer((path / cfg["model"]).read_bytes(), lang=cfg["lang"])
    else:
        raise ValueError(f"{cfg_path}: unknown tokenizer kind {cfg.get('kind')!r}")
    if tok.vocab_size != cfg["vocab_size"]:
        raise ValueError(f"{cfg_path}: vocab_size {cfg['vocab_size']} != loaded {tok.vocab_size}")
    return tok


# ----------------------------------------------------------------------------- identity


def sha256_dir(folder: str | Path) -> str:
    """Hex sha256 over a folder's files (relative names and bytes, sorted): a saved tokenizer's identity."""
    import hashlib

    from kdlab.checkpoint import sha256_file

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: tokenizer folder not found")
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        h.update(sha256_file(path).encode() + b"\0")
    return h.hexdigest()


def tokenizer_sha256(tokenizer: Tokenizer) -> str:
    """Fingerprint of a tokenizer object: the hash of the files its ``save(dir)`` writes (checkpoints and
    N-best caches record it, so that they only ever meet the tokenizer they were made with)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        return sha256_dir(tmp)

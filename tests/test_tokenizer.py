"""Reserved ids, character and BPE tokenizers, save/load round trips, normalisation."""

import pytest

from kdlab.data import tokenizer as tk
from kdlab.data.tokenizer import (
    BLANK,
    IGNORE_ID,
    MASK,
    NUM_SPECIAL,
    SOS_EOS,
    UNK,
    BPETokenizer,
    CharTokenizer,
    load_tokenizer,
    normalize_text,
    train_tokenizer,
)

EN_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Seven ships sailed north, carrying forty barrels of salt!",
    "She said it's raining; bring the umbrella.",
    "Numbers like twenty three and ninety nine are spelled out.",
    "A lazy afternoon: the dog sleeps, the fox waits.",
] * 4
ZH_TEXTS = ["今天 天气很好。", "我们明天去北京，好吗？", "天气预报说明天下雨"]


def test_reserved_ids():
    assert (BLANK, UNK, SOS_EOS, MASK, NUM_SPECIAL, IGNORE_ID) == (0, 1, 2, 3, 4, -1)


def test_normalize_text():
    assert normalize_text("  Hello,   WORLD! It's  ok-ish. ", "en") == "hello world it's ok ish"
    assert normalize_text("今天 天气，很好！ＡＢ", "zh") == "今天天气很好ab"  # NFKC folds full-width
    with pytest.raises(ValueError, match="unknown language"):
        normalize_text("x", "fr")


def test_char_tokenizer_hand_case(tmp_path):
    tok = CharTokenizer.train(ZH_TEXTS)
    # 天 appears 5 times, 明 and 气 twice ... the most frequent character gets the first regular id
    assert tok.id_to_piece(NUM_SPECIAL) == "天"
    assert [tok.id_to_piece(i) for i in range(4)] == ["<blank>", "<unk>", "<sos/eos>", "<mask>"]
    assert tok.kind == "char" and tok.unit == "char"
    ids = tok.encode("今天 下雨。")
    assert len(ids) == 4 and all(i >= NUM_SPECIAL for i in ids)
    assert tok.decode(ids) == "今天下雨"
    assert tok.encode("猫") == [UNK]
    assert tok.decode([BLANK, *ids, SOS_EOS, MASK, IGNORE_ID]) == "今天下雨"
    assert tok.vocab_size == NUM_SPECIAL + len(set("".join(normalize_text(t, "zh") for t in ZH_TEXTS)))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, CharTokenizer) and again.chars == tok.chars
    assert again.encode("天气") == tok.encode("天气")


def test_bpe_tokenizer_ids_and_roundtrip(tmp_path):
    tok = BPETokenizer.train(EN_TEXTS, vocab_size=80)
    assert tok.kind == "bpe" and tok.unit == "word"
    assert [tok.id_to_piece(i) for i in range(4)] == ["<blank>", "<unk>", "<sos/eos>", "<mask>"]
    assert 40 < tok.vocab_size <= 80
    text = "the lazy fox sailed north"
    ids = tok.encode("The LAZY fox, sailed north!")
    assert all(NUM_SPECIAL <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode([SOS_EOS, *ids, SOS_EOS, BLANK]) == text
    assert UNK in tok.encode("route 777")  # digits never seen in training
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, BPETokenizer) and again.vocab_size == tok.vocab_size
    assert again.encode(text) == tok.encode(text)


def test_bpe_training_is_deterministic():
    a = BPETokenizer.train(EN_TEXTS, vocab_size=70)
    b = BPETokenizer.train(list(EN_TEXTS), vocab_size=70)
    assert a.model_proto == b.model_proto


def test_train_tokenizer_by_language():
    assert train_tokenizer(ZH_TEXTS, "zh").kind == "char"
    assert train_tokenizer(EN_TEXTS, "en", vocab_size=60).kind == "bpe"


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        BPETokenizer.train(["!!!", "  "])
    with pytest.raises(FileNotFoundError, match="no tokenizer saved"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / tk.CONFIG_NAME).write_text('{"kind": "wordpiece", "lang": "en"}')
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        load_tokenizer(tmp_path)

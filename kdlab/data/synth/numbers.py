"""Numbers written out as words (English) or characters (Mandarin), as a transcript spells them."""

from __future__ import annotations

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
    "sixteen seventeen eighteen nineteen".split()
_TENS = "- - twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
        "nine": "ninth", "twelve": "twelfth"}


def en_number(n: int) -> str:
    """0 ≤ n < 1,000,000 in words: 342 → 'three hundred and forty two'."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"en_number supports 0..999999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + en_number(rest))
    rest = n % 1000
    head = en_number(n // 1000) + " thousand"
    if rest == 0:
        return head
    return head + (" and " if rest < 100 else " ") + en_number(rest)


def en_ordinal(n: int) -> str:
    """1 → 'first', 23 → 'twenty third', 40 → 'fortieth'."""
    words = en_number(n).split()
    last = words[-1]
    if last in _ORD:
        words[-1] = _ORD[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def en_year(y: int) -> str:
    """1998 → 'nineteen ninety eight', 2005 → 'two thousand and five', 2021 → 'twenty twenty one'."""
    if not 1100 <= y <= 2099:
        raise ValueError(f"en_year supports 1100..2099, got {y}")
    if 2000 <= y < 2010:
        return en_number(y)
    hi, lo = divmod(y, 100)
    if lo == 0:
        return en_number(hi) + " hundred"
    return en_number(hi) + " " + (("oh " + _ONES[lo]) if lo < 10 else en_number(lo))


_ZH_DIGITS = "零一二三四五六七八九"


def _zh_below_10000(n: int) -> str:
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = n // value % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _ZH_DIGITS[d] + unit
    return out


def zh_number(n: int, measure: bool = False) -> str:
    """0 ≤ n < 100,000,000 in characters: 35 → '三十五', 12 → '十二', 2 with ``measure`` → '两'."""
    if not 0 <= n < 100_000_000:
        raise ValueError(f"zh_number supports 0..99999999, got {n}")
    if n == 0:
        return "零"
    if measure and n == 2:
        return "两"
    if n >= 10000:
        hi, lo = divmod(n, 10000)
        tail = _zh_below_10000(lo)
        return zh_number(hi) + "万" + ("" if lo == 0 else ("零" if lo < 1000 else "") + tail)
    out = _zh_below_10000(n)
    return out[1:] if 10 <= n < 20 else out

"""A small Mandarin grammar: seven domains, aspect (了/正在), 把, 的-relative clauses, questions, numbers.

``generate(rng)`` returns a :class:`~kdlab.data.synth.grammar_en.Sentence`: ``spoken`` keeps Chinese
punctuation for espeak's prosody, ``text`` (AISHELL style) is the characters only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from kdlab.data.synth import words_zh as W
from kdlab.data.synth.grammar_en import Sentence
from kdlab.data.synth.numbers import zh_number

MIN_CHARS, MAX_CHARS = 4, 36
PUNCT = "，。？"


@dataclass(frozen=True)
class Domain:
    name: str
    agents: tuple[str, ...]
    things: tuple[tuple[str, str], ...]  # (noun, measure word)
    verbs_t: tuple[str, ...]
    verbs_i: tuple[str, ...]
    adjs: tuple[str, ...]
    places: tuple[str, ...]


@lru_cache(maxsize=1)
def domains() -> tuple[Domain, ...]:
    out = []
    for name, spec in W.DOMAINS.items():
        things = tuple(tuple(t.split(":")) for t in spec["things"].split())
        out.append(Domain(name, tuple(spec["agents"].split()), things, tuple(spec["verbs_t"].split()),
                          tuple(spec["verbs_i"].split()), tuple(spec["adjs"].split()),
                          tuple(spec["places"].split())))
    return tuple(out)


def _pick(rng: random.Random, seq):  # noqa: ANN001, ANN202 - any sequence
    return seq[rng.randrange(len(seq))]


def subject(rng: random.Random, dom: Domain) -> str:
    r = rng.random()
    if r < 0.25:
        return _pick(rng, W.PRONOUNS)
    if r < 0.45:
        return _pick(rng, W.NAMES)
    agent = _pick(rng, dom.agents)
    return _pick(rng, ("", "", "我的", "那个", "这位", "我们的")) + agent


def counted(rng: random.Random, noun: str, mw: str) -> str:
    """Number + measure word + noun ('三本书', '两杯茶') or demonstrative ('这本书')."""
    if rng.random() < 0.5:
        return zh_number(rng.randint(1, 12), measure=True) + mw + noun
    return _pick(rng, ("这", "那", "一")) + mw + noun


def obj(rng: random.Random, dom: Domain) -> str:
    noun, mw = _pick(rng, dom.things)
    r = rng.random()
    if r < 0.4:
        return counted(rng, noun, mw)
    if r < 0.55:
        return _pick(rng, dom.adjs) + "的" + noun
    if r < 0.65:  # relative clause: 妈妈昨天买的那本书
        rel = subject(rng, dom) + _pick(rng, W.TIMES_PAST) + _pick(rng, dom.verbs_t)
        return rel + "的那" + mw + noun
    return noun


def place(rng: random.Random, dom: Domain) -> str:
    return "在" + (_pick(rng, W.CITIES) if rng.random() < 0.3 else _pick(rng, dom.places))


def clause(rng: random.Random, dom: Domain, when: str | None = None) -> str:
    """Subject (time) (place) predicate, the aspect chosen to fit the time word."""
    when = when or _pick(rng, ("past", "future", "now"))
    times = {"past": W.TIMES_PAST, "future": W.TIMES_FUTURE, "now": W.TIMES_NOW}[when]
    subj = subject(rng, dom)
    time = _pick(rng, times) if rng.random() < 0.6 else ""
    where = place(rng, dom) if rng.random() < 0.4 else ""
    r = rng.random()
    if r < 0.5:
        verb = _pick(rng, dom.verbs_t)
        aspect = {"past": "了", "future": "", "now": ""}[when]
        pre = {"past": _pick(rng, ("", "已经")), "future": _pick(rng, ("要", "会", "打算", "想")),
               "now": _pick(rng, ("", "正在", "经常"))}[when]
        return subj + time + where + pre + verb + aspect + obj(rng, dom)
    if r < 0.75:
        pre = {"past": _pick(rng, ("", "已经", "终于")), "future": _pick(rng, ("要", "会", "准备")),
               "now": _pick(rng, ("正在", "常常", "不想"))}[when]
        return subj + time + where + pre + _pick(rng, dom.verbs_i) + ("了" if when == "past" else "")
    if r < 0.88:
        return subj + time + _pick(rng, W.DEGREE) + _pick(rng, dom.adjs)
    noun, mw = _pick(rng, dom.things)
    return subj + time + "把" + "那" + mw + noun + _pick(rng, dom.verbs_t) + "了"


def question(rng: random.Random, dom: Domain) -> str:
    subj = subject(rng, dom)
    r = rng.random()
    if r < 0.3:
        return subj + _pick(rng, ("", "明天", "昨天")) + _pick(rng, dom.verbs_t) + obj(rng, dom) + "吗"
    if r < 0.45:
        return subj + _pick(rng, ("什么时候", "为什么", "怎么")) + _pick(rng, dom.verbs_i)
    if r < 0.6:
        return subj + "在哪里" + _pick(rng, dom.verbs_t) + _pick(rng, dom.things)[0]
    if r < 0.75:
        noun, mw = _pick(rng, dom.things)
        return subj + _pick(rng, dom.verbs_t) + "了几" + mw + noun
    if r < 0.88:
        verb = _pick(rng, dom.verbs_t)
        return subj + "想不想" + verb + _pick(rng, dom.things)[0]
    noun, mw = _pick(rng, dom.things)
    return "这" + mw + noun + "是不是太" + _pick(rng, dom.adjs) + "了"


def number_sentence(rng: random.Random, dom: Domain) -> str:
    unit = W.UNITS[dom.name]
    n = rng.choice((rng.randint(1, 30), rng.randint(31, 999), rng.randint(1000, 99999)))
    amount = zh_number(n, measure=unit.startswith(("个", "公", "分", "块"))) + unit
    r = rng.random()
    if r < 0.35:
        high = zh_number(rng.randint(1, 40))
        return _pick(rng, W.CITIES) + _pick(rng, W.TIMES_FUTURE) + "的最高气温是" + high + "度"
    if r < 0.6:
        return subject(rng, dom) + _pick(rng, W.TIMES_PAST) + "一共用了" + amount
    if r < 0.8:
        year = "".join("零一二三四五六七八九"[int(d)] for d in str(rng.randint(1950, 2030)))
        month, day = zh_number(rng.randint(1, 12)), zh_number(rng.randint(1, 28))
        return subject(rng, dom) + year + "年" + month + "月" + day + "号去了" + _pick(rng, W.CITIES)
    return "这个" + _pick(rng, dom.things)[0] + "要" + amount + "，" + _pick(rng, W.WEEKDAYS) + "以前"


def weather_sentence(rng: random.Random) -> str:
    kind = _pick(rng, W.DOMAINS["weather"]["weather"].split())
    return _pick(rng, W.CITIES) + _pick(rng, W.TIMES_FUTURE) + "有" + kind


def generate_raw(rng: random.Random) -> tuple[str, str]:
    """One sentence (punctuation inside) and its final mark."""
    dom = _pick(rng, domains())
    r = rng.random()
    if r < 0.42:
        return clause(rng, dom), "。"
    if r < 0.58:
        return question(rng, dom), "？"
    if r < 0.68:
        return number_sentence(rng, dom), "。"
    if r < 0.74:
        return weather_sentence(rng), "。"
    if r < 0.84:
        a, b = _pick(rng, (("因为", "所以"), ("虽然", "但是"), ("", "而且"), ("", "可是")))
        return a + clause(rng, dom, "past") + "，" + b + clause(rng, dom, "past"), "。"
    if r < 0.92:
        then = subject(rng, dom) + "就" + _pick(rng, dom.verbs_i)
        return "如果" + clause(rng, dom, "future") + "，" + then, "。"
    noun, mw = _pick(rng, dom.things)
    where = _pick(rng, dom.places) + _pick(rng, ("里", "上", "旁边"))
    return "请把这" + mw + noun + "放在" + where, "。"


def generate(rng: random.Random, allowed: set[str] | None = None) -> Sentence:
    """A sentence of MIN_CHARS..MAX_CHARS characters using only ``allowed`` characters (if given)."""
    while True:
        raw, end = generate_raw(rng)
        text = "".join(c for c in raw if c not in PUNCT)
        if MIN_CHARS <= len(text) <= MAX_CHARS and (allowed is None or set(text) <= allowed):
            return Sentence(spoken=raw + end, text=text)


def charset() -> set[str]:
    """Every character the grammar can produce."""
    chars: set[str] = set()
    for spec in W.DOMAINS.values():
        chars.update(c for field in spec.values() for c in field if c not in " :")
    for group in (W.NAMES, W.CITIES, W.PRONOUNS, W.TIMES_PAST, W.TIMES_FUTURE, W.TIMES_NOW, W.WEEKDAYS,
                  W.DEGREE, W.ADVERBS, tuple(W.UNITS.values())):
        chars.update(c for word in group for c in word)
    chars.update("零一二三四五六七八九十百千万两年月号度")
    chars.update("的了在把是不太想要会吗什么时候为怎哪里几这那个位就请放上旁边有最高气温用共以前因所虽然但而且可")
    chars.update("已经打算准备正常终于去如")
    return chars

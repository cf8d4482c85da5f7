"""A small English grammar: seven domains, agreement, relative clauses, questions, numbers.

``generate(rng)`` returns a :class:`Sentence` whose ``spoken`` form (with punctuation, for espeak) and
``text`` (LibriSpeech style: upper case, words only) say exactly the same words.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kdlab.data.synth import words_en as W
from kdlab.data.synth.lexicon_en import Domain, Noun, Verb, article, domains
from kdlab.data.synth.numbers import en_number, en_ordinal, en_year

MIN_WORDS, MAX_WORDS = 3, 25
TENSES = ("present", "past", "future", "progressive", "perfect")
SUBJ_PRONOUNS = (("i", False, 1), ("you", True, 2), ("he", False, 3), ("she", False, 3),
                 ("we", True, 1), ("they", True, 3))
OBJ_PRONOUNS = ("me", "you", "him", "her", "us", "them")
FUNCTION_WORDS = (
    "a an the some these those many my our their her his every this that who what where when why how "
    "often did do does will is are am was were be has have and but because so although while if please "
    "there it happened total on of in at to from near behind outside"
)


@dataclass(frozen=True)
class Sentence:
    spoken: str  # what espeak reads
    text: str  # the transcript


@dataclass
class NP:
    words: list[str]
    plural: bool
    person: int = 3


def _pick(rng: random.Random, seq):  # noqa: ANN001, ANN202 - any sequence
    return seq[rng.randrange(len(seq))]


# ---------------------------------------------------------------- noun phrases
def noun_phrase(rng: random.Random, dom: Domain, nouns: tuple[Noun, ...], depth: int = 0) -> NP:
    """Det (Adj) N (PP | relative clause); number agrees with the chosen form."""
    noun = _pick(rng, nouns)
    plural = noun.pl is not None and rng.random() < 0.35
    adj = [_pick(rng, dom.adjs)] if rng.random() < 0.35 else []
    if plural:
        det = _pick(rng, ("the", "the", "some", "these", "those", "many", "my", "our", "their"))
        if rng.random() < 0.15:
            det = en_number(rng.randint(2, 12))
        words = [det, *adj, noun.pl]
    elif noun.pl is None:
        words = [_pick(rng, ("the", "some", "this", "my", "their")), *adj, noun.sg]
    else:
        det = _pick(rng, ("the", "the", "a", "this", "that", "my", "her", "his", "every"))
        head = [*adj, noun.sg]
        words = [article(head[0]) if det == "a" else det, *head]
    if depth == 0 and rng.random() < 0.15:
        words += [_pick(rng, ("near", "behind", "from", "in")), "the", _pick(rng, dom.places).sg]
    elif depth == 0 and rng.random() < 0.12:
        words += relative_clause(rng, dom, NP(words, plural))
    return NP(words, plural)


def subject(rng: random.Random, dom: Domain, depth: int = 0) -> NP:
    r = rng.random()
    if r < 0.2:
        word, plural, person = _pick(rng, SUBJ_PRONOUNS)
        return NP([word], plural, person)
    if r < 0.35:
        return NP([_pick(rng, W.PEOPLE)], False)
    return noun_phrase(rng, dom, dom.agents, depth)


def obj(rng: random.Random, dom: Domain, depth: int = 0) -> NP:
    if rng.random() < 0.08:
        return NP([_pick(rng, OBJ_PRONOUNS)], False)
    return noun_phrase(rng, dom, dom.things, depth)


def relative_clause(rng: random.Random, dom: Domain, head: NP) -> list[str]:
    """'who/that' + VP agreeing with the head, or 'that' + subject + transitive verb (object gap)."""
    is_agent = head.words[-1] in {n.sg for n in dom.agents} | {n.pl for n in dom.agents if n.pl}
    if is_agent and rng.random() < 0.6:
        verb = _pick(rng, dom.verbs_i)
        return [_pick(rng, ("who", "that")), *verb_group(verb, head, _pick(rng, ("present", "past")))]
    subj = subject(rng, dom, depth=1)
    return ["that", *subj.words, *verb_group(_pick(rng, dom.verbs_t), subj, "past")]


# ---------------------------------------------------------------- verbs and agreement
def be(subj: NP, tense: str) -> str:
    if tense == "past":
        return "were" if subj.plural or subj.words == ["you"] else "was"
    if subj.words == ["i"]:
        return "am"
    return "are" if subj.plural else "is"


def verb_group(verb: Verb, subj: NP, tense: str) -> list[str]:
    """The finite verb (with auxiliaries) for ``subj`` in ``tense``."""
    sg3 = not subj.plural and subj.person == 3
    if tense == "present":
        return [verb.s3 if sg3 else verb.base]
    if tense == "past":
        return [verb.past]
    if tense == "future":
        return ["will", verb.base]
    if tense == "progressive":
        return [be(subj, "present"), verb.ing]
    if tense == "perfect":
        return ["has" if sg3 else "have", verb.part]
    raise ValueError(f"unknown tense {tense!r}")


def place_pp(rng: random.Random, dom: Domain) -> list[str]:
    if rng.random() < 0.25:
        return [_pick(rng, ("in", "to", "from", "near")), _pick(rng, W.CITIES)]
    place = _pick(rng, dom.places).sg
    return [_pick(rng, ("in", "at", "near", "behind", "outside")), "the", place]


def clause(rng: random.Random, dom: Domain, tense: str | None = None) -> list[str]:
    """Subject + verb group + object/complement + optional place, adverb and time."""
    tense = tense or _pick(rng, TENSES)
    subj = subject(rng, dom)
    r = rng.random()
    if r < 0.55:
        words = [*subj.words, *verb_group(_pick(rng, dom.verbs_t), subj, tense), *obj(rng, dom).words]
    elif r < 0.8:
        words = [*subj.words, *verb_group(_pick(rng, dom.verbs_i), subj, tense)]
        if rng.random() < 0.3:
            words.append(_pick(rng, W.ADVERBS))
    else:
        cop = ["will", "be"] if tense == "future" else [be(subj, "past" if tense == "past" else "present")]
        inten = [_pick(rng, W.INTENSIFIERS)] if rng.random() < 0.4 else []
        words = [*subj.words, *cop, *inten, _pick(rng, dom.adjs)]
    if rng.random() < 0.35:
        words += place_pp(rng, dom)
    if tense in ("past", "future") and rng.random() < 0.35:
        words += _pick(rng, W.TIMES_PAST if tense == "past" else W.TIMES_FUTURE).split()
    return words


# ---------------------------------------------------------------- sentence types
def question(rng: random.Random, dom: Domain) -> list[str]:
    subj = subject(rng, dom)
    sg3 = not subj.plural and subj.person == 3
    r = rng.random()
    if r < 0.3:
        aux = _pick(rng, ("does" if sg3 else "do", "did", "will"))
        return [aux, *subj.words, _pick(rng, dom.verbs_t).base, *obj(rng, dom).words]
    if r < 0.5:
        wh = _pick(rng, ("where", "when", "why", "how often"))
        aux = _pick(rng, ("does" if sg3 else "do", "did"))
        return [*wh.split(), aux, *subj.words, _pick(rng, dom.verbs_i).base]
    if r < 0.65:
        return ["what", "did", *subj.words, _pick(rng, dom.verbs_t).base, *place_pp(rng, dom)]
    if r < 0.8:
        things = [n for n in dom.things if n.pl is not None]
        return ["how", "many", _pick(rng, things).pl, "did", *subj.words, _pick(rng, dom.verbs_t).base]
    if r < 0.9:
        return ["who", _pick(rng, dom.verbs_t).past, *obj(rng, dom).words]
    return [be(subj, "present"), *subj.words, _pick(rng, W.INTENSIFIERS), _pick(rng, dom.adjs)]


def number_sentence(rng: random.Random, dom: Domain) -> list[str]:
    unit_sg, unit_pl = W.UNITS[dom.name]
    n = rng.choice((rng.randint(1, 20), rng.randint(21, 999), rng.randint(1000, 99999)))
    amount = [*en_number(n).split(), unit_sg if n == 1 else unit_pl]
    r = rng.random()
    if r < 0.4:
        subj = subject(rng, dom)
        verb = _pick(rng, ("needed", "reported", "expected", "counted", "measured"))
        return [*subj.words, verb, *amount, *place_pp(rng, dom)]
    if r < 0.6:
        things = [t for t in dom.things if t.pl is not None]
        k = rng.randint(1, 12)
        noun = _pick(rng, things)
        count = [*en_number(k).split(), noun.sg if k == 1 else noun.pl]
        return ["there", "was" if k == 1 else "were", *count, *place_pp(rng, dom)]
    if r < 0.8:
        day = [en_ordinal(rng.randint(1, 28)), "of", _pick(rng, W.MONTHS)]
        year = en_year(rng.randint(1850, 2030)).split()
        return ["it", "happened", "on", "the", *" ".join(day).split(), *year]
    return ["the", "total", "was", *amount, "on", _pick(rng, W.WEEKDAYS)]


def generate_words(rng: random.Random) -> tuple[list[str], str]:
    """One sentence as words plus its final punctuation ('.' or '?')."""
    dom = _pick(rng, domains())
    r = rng.random()
    if r < 0.45:
        return clause(rng, dom), "."
    if r < 0.6:
        return question(rng, dom), "?"
    if r < 0.72:
        return number_sentence(rng, dom), "."
    if r < 0.82:
        conj = _pick(rng, ("and", "but", "because", "so", "although", "while"))
        return [*clause(rng, dom), "<,>", conj, *clause(rng, dom)], "."
    if r < 0.9:
        first = ["if", *clause(rng, dom, "present")]
        return [*first, "<,>", *clause(rng, dom, "future")], "."
    verb = _pick(rng, dom.verbs_t)
    return ["please", verb.base, *obj(rng, dom).words, *place_pp(rng, dom)], "."


def generate(rng: random.Random) -> Sentence:
    """A sentence of MIN_WORDS..MAX_WORDS words (resampled until it fits)."""
    while True:
        words, end = generate_words(rng)
        plain = " ".join(w for w in words if w != "<,>").split()
        if MIN_WORDS <= len(plain) <= MAX_WORDS:
            break
    spoken = " ".join(words).replace(" <,>", ",")
    spoken = spoken[0].upper() + spoken[1:] + end
    spoken = " ".join("I" if w == "i" else w for w in spoken.split(" "))
    return Sentence(spoken=spoken, text=" ".join(plain).upper())


def lexicon() -> set[str]:
    """Every word form the grammar can produce (upper case, as in transcripts)."""
    words: set[str] = set()
    for dom in domains():
        for n in (*dom.agents, *dom.things, *dom.places):
            words.update(n.sg.split())
            words.update((n.pl or "").split())
        for v in (*dom.verbs_t, *dom.verbs_i):
            words.update((v.base, v.s3, v.past, v.ing, v.part))
        words.update(dom.adjs)
    for group in (W.PEOPLE, W.CITIES, W.WEEKDAYS, W.MONTHS, W.ADVERBS, W.INTENSIFIERS, OBJ_PRONOUNS):
        words.update(group)
    words.update(w for t in W.TIMES for w in t.split())
    words.update(FUNCTION_WORDS.split())
    words.update(p[0] for p in SUBJ_PRONOUNS)
    words.update(w for n in range(1, 100) for w in (*en_number(n).split(), *en_ordinal(n).split()))
    words.update(("hundred", "thousand", "oh"))
    words.update(w for unit in W.UNITS.values() for w in unit)
    return {w.upper() for w in words}

"""English lexicon: nouns and verbs with their inflected forms, parsed from :mod:`words_en`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from kdlab.data.synth import words_en

VOWELS = "aeiou"


@dataclass(frozen=True)
class Noun:
    sg: str
    pl: str | None  # None: uncountable (no plural, no "a")


@dataclass(frozen=True)
class Verb:
    base: str
    s3: str  # third person singular present
    past: str
    ing: str
    part: str  # past participle


@dataclass(frozen=True)
class Domain:
    name: str
    agents: tuple[Noun, ...]
    things: tuple[Noun, ...]
    verbs_t: tuple[Verb, ...]
    verbs_i: tuple[Verb, ...]
    adjs: tuple[str, ...]
    places: tuple[Noun, ...]


def plural(word: str) -> str:
    """Regular English plural: box → boxes, city → cities, day → days, dog → dogs."""
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2] not in VOWELS:
        return word[:-1] + "ies"
    return word + "s"


def third_person(verb: str) -> str:
    """cook → cooks, wash → washes, carry → carries, go → goes."""
    if verb in ("go", "do"):
        return verb + "es"
    if verb == "have":
        return "has"
    return plural(verb)


def regular_past(verb: str) -> str:
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in VOWELS:
        return verb[:-1] + "ied"
    return verb + "ed"


def regular_ing(verb: str) -> str:
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        return verb[:-1] + "ing"
    return verb + "ing"


def parse_noun(entry: str) -> Noun:
    word = entry.replace("_", " ")
    if word.endswith("*"):
        return Noun(word[:-1], None)
    sg, _, pl = word.partition(":")
    return Noun(sg, pl or plural(sg))


def parse_verb(entry: str) -> Verb:
    parts = entry.split(":") + ["-"] * 3
    base, past, ing, part = parts[:4]
    past = regular_past(base) if past == "-" else past
    ing = regular_ing(base) if ing == "-" else ing
    part = past if part == "-" else part
    return Verb(base, third_person(base), past, ing, part)


def _parse_domain(name: str, spec: dict[str, str]) -> Domain:
    return Domain(
        name=name,
        agents=tuple(parse_noun(w) for w in spec["agents"].split()),
        things=tuple(parse_noun(w) for w in spec["things"].split()),
        verbs_t=tuple(parse_verb(w) for w in spec["verbs_t"].split()),
        verbs_i=tuple(parse_verb(w) for w in spec["verbs_i"].split()),
        adjs=tuple(spec["adjs"].split()),
        places=tuple(parse_noun(w) for w in spec["places"].split()),
    )


@lru_cache(maxsize=1)
def domains() -> tuple[Domain, ...]:
    return tuple(_parse_domain(name, spec) for name, spec in words_en.DOMAINS.items())


def article(word: str) -> str:
    """'a' or 'an' before ``word`` (by sound for the few exceptions in the lexicon)."""
    if word.startswith(("hour", "honest")):
        return "an"
    if word.startswith(("uni", "use", "eu", "one")):
        return "a"
    return "an" if word[0] in VOWELS else "a"

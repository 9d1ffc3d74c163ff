"""A seeded PrOntoQA-style generator (Saparov & He, 2023), written for cotlens.

An example is a linear concept chain c_0 -> c_1 -> ... -> c_{h-1} with an entity
that is a c_0 and one property rule on c_{h-1}; answering needs ``h`` hops of modus
ponens. The gold chain of thought restates each premise and each conclusion:

    Wren is a wumpus. Every wumpus is a tumpus. Wren is a tumpus.
    Every tumpus is not bright. Wren is not bright.

Dimensions (each a config list, crossed into a grid):
- ontology: ``fictional`` (nonce concepts), ``true`` (a real taxonomy with true
  properties), ``false`` (the same words with facts that contradict the world);
- hops 1..5; distractors ``none`` or ``relevant``; negation (property rule negated).

``relevant`` distractors: for every rule on the proof path ``Every A is [not] B`` a
rule ``Every D is [the opposite] B`` on a fresh concept D that the entity never
reaches, so a model must pick the right fact, not the right predicate.
Labels are balanced: the query is the chain's conclusion (True) or its negation (False).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cotlens.errors import CotlensError

ONTOLOGIES = ("fictional", "true", "false")
DISTRACTORS = ("none", "relevant")
MAX_HOPS = 5

FICTIONAL_CONCEPTS = (
    "wumpus",
    "yumpus",
    "zumpus",
    "dumpus",
    "rompus",
    "numpus",
    "tumpus",
    "vumpus",
    "impus",
    "jompus",
    "gorpus",
    "shumpus",
    "lempus",
    "sterpus",
    "grimpus",
    "lorpus",
    "brimpus",
    "lirpus",
    "storpus",
    "felpus",
    "quimpus",
    "harpus",
)
FICTIONAL_PROPERTIES = (
    "bright",
    "dull",
    "kind",
    "mean",
    "small",
    "large",
    "hot",
    "cold",
    "sweet",
    "sour",
    "shy",
    "loud",
    "wooden",
    "liquid",
    "happy",
    "sad",
    "red",
    "blue",
    "opaque",
    "fast",
)
ENTITIES = ("Wren", "Max", "Sally", "Polly", "Rex", "Sam", "Fae", "Stella", "Alex", "Tom")

TRUE_TAXONOMIES: tuple[tuple[str, ...], ...] = (
    ("cat", "feline", "carnivore", "mammal", "vertebrate", "animal"),
    ("dog", "canine", "carnivore", "mammal", "vertebrate", "animal"),
    ("sparrow", "songbird", "bird", "vertebrate", "animal"),
    ("salmon", "fish", "vertebrate", "animal", "organism"),
    ("bee", "insect", "arthropod", "invertebrate", "animal"),
    ("spider", "arachnid", "arthropod", "invertebrate", "animal"),
    ("snake", "reptile", "vertebrate", "animal", "organism"),
    ("frog", "amphibian", "vertebrate", "animal", "organism"),
)
# concept -> [(adjective, holds in the real world)]; properties are inherited downwards.
TRUE_PROPERTIES: dict[str, tuple[tuple[str, bool], ...]] = {
    "feline": (("carnivorous", True),),
    "canine": (("carnivorous", True),),
    "carnivore": (("carnivorous", True), ("herbivorous", False)),
    "mammal": (("warm-blooded", True), ("furry", True), ("cold-blooded", False)),
    "bird": (("feathered", True), ("warm-blooded", True), ("cold-blooded", False)),
    "songbird": (("feathered", True),),
    "fish": (("cold-blooded", True), ("aquatic", True), ("furry", False)),
    "reptile": (("cold-blooded", True), ("scaly", True), ("furry", False)),
    "amphibian": (("cold-blooded", True), ("feathered", False)),
    "insect": (("six-legged", True), ("eight-legged", False)),
    "arachnid": (("eight-legged", True), ("six-legged", False)),
    "invertebrate": (("spineless", True),),
    "vertebrate": (("spineless", False),),
    "animal": (("multicellular", True), ("photosynthetic", False)),
    "organism": (("alive", True),),
}


def article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def is_a(subject: str, concept: str) -> str:
    return f"{subject} is {article(concept)} {concept}"


def every(concept: str, predicate: str) -> str:
    return f"Every {concept} is {predicate}."


@dataclass(frozen=True)
class Example:
    """One generated question with its gold chain (all strings are final text)."""

    ontology: str
    hops: int
    distractors: str
    negation: bool
    entity: str
    facts: tuple[str, ...]
    query: str
    label: bool
    gold_cot: tuple[str, ...]
    chain: tuple[str, ...] = field(compare=False)
    prop: str = field(compare=False)


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 0
    n_per_cell: int = 4
    hops: tuple[int, ...] = (1, 2, 3)
    ontologies: tuple[str, ...] = ONTOLOGIES
    distractors: tuple[str, ...] = DISTRACTORS
    negation: tuple[bool, ...] = (False, True)
    n_shots: int = 6
    shuffle_facts: bool = True

    def __post_init__(self) -> None:
        bad = [h for h in self.hops if not 1 <= h <= MAX_HOPS]
        if bad:
            raise CotlensError(f"prompts.hops has {bad}", f"use hops between 1 and {MAX_HOPS}")
        for name, allowed in (("ontologies", ONTOLOGIES), ("distractors", DISTRACTORS)):
            vals = getattr(self, name)
            if not vals or any(v not in allowed for v in vals):
                raise CotlensError(f"prompts.{name} = {list(vals)}", f"choose from {list(allowed)}")
        if self.n_per_cell < 1 or not self.hops or not self.negation:
            raise CotlensError(
                "the prompt grid is empty (prompts.n_per_cell, hops or negation)",
                "give at least one value for each grid dimension and n_per_cell >= 1",
            )
        if self.n_shots < 0:
            raise CotlensError("prompts.n_shots is negative", "use 0 or more exemplars")


def _chain_and_property(
    rng: random.Random, ontology: str, hops: int, negation: bool
) -> tuple[list[str], str, bool, list[str]]:
    """Concept chain, property, rule polarity (True = positive) and a distractor pool."""
    if ontology == "fictional":
        names = rng.sample(FICTIONAL_CONCEPTS, len(FICTIONAL_CONCEPTS))
        chain, pool = names[:hops], names[hops:]
        prop = rng.choice(FICTIONAL_PROPERTIES)
        return chain, prop, not negation, pool
    # true ontology: the stated polarity is the real one; negation picks a property that
    # does not hold. false ontology: the stated polarity contradicts the world.
    want_real = (not negation) if ontology == "true" else negation
    options = [
        (tax, start, p)
        for tax in TRUE_TAXONOMIES
        for start in range(len(tax) - hops + 1)
        for p in sorted({q for c in tax[start + hops - 1 :] for q in TRUE_PROPERTIES.get(c, ())})
        if p[1] == want_real
    ]
    tax, start, (prop, real) = rng.choice(options)
    chain = list(tax[start : start + hops])
    polarity = real if ontology == "true" else not real
    if ontology == "false" and hops >= 2:
        orig = list(chain)
        while chain == orig:
            rng.shuffle(chain)
    others = sorted({c for t in TRUE_TAXONOMIES for c in t} - set(chain))
    pool = rng.sample(others, len(others))
    return chain, prop, polarity, pool


def make_example(
    rng: random.Random,
    ontology: str,
    hops: int,
    distractors: str,
    negation: bool,
    label: bool,
    shuffle_facts: bool = True,
) -> Example:
    """Generate one example; everything random comes from ``rng``."""
    chain, prop, positive, pool = _chain_and_property(rng, ontology, hops, negation)
    entity = rng.choice(ENTITIES)
    pred = prop if positive else f"not {prop}"
    anti = f"not {prop}" if positive else prop
    rules = [every(chain[i], f"{article(chain[i + 1])} {chain[i + 1]}") for i in range(hops - 1)]
    rules.append(every(chain[-1], pred))
    facts = [is_a(entity, chain[0]) + "."] + rules
    if distractors == "relevant":
        for i in range(hops - 1):
            facts.append(every(pool[i], f"not {article(chain[i + 1])} {chain[i + 1]}"))
        facts.append(every(pool[hops - 1], anti))
    if shuffle_facts:
        rng.shuffle(facts)
    cot = [is_a(entity, chain[0]) + "."]
    for i in range(hops - 1):
        cot += [rules[i], is_a(entity, chain[i + 1]) + "."]
    cot += [rules[-1], f"{entity} is {pred}."]
    query = f"{entity} is {pred if label else anti}"
    return Example(
        ontology=ontology,
        hops=hops,
        distractors=distractors,
        negation=negation,
        entity=entity,
        facts=tuple(facts),
        query=query,
        label=label,
        gold_cot=tuple(cot),
        chain=tuple(chain),
        prop=prop,
    )


def response_text(cot: Sequence[str], label: bool) -> str:
    """The gold response: the chain, then the answer sentence."""
    return " ".join(cot) + f" So the answer is {label}."


def _cell_rng(seed: int, *key: object) -> random.Random:
    return random.Random(f"{seed}|" + "|".join(map(str, key)))


def generate(cfg: GeneratorConfig) -> Iterator[tuple[Example, list[Example]]]:
    """Yield (test example, its exemplars) over the whole grid, deterministically."""
    for ontology in cfg.ontologies:
        for hops in cfg.hops:
            for distractors in cfg.distractors:
                for negation in cfg.negation:
                    for i in range(cfg.n_per_cell):
                        rng = _cell_rng(cfg.seed, ontology, hops, distractors, negation, i)
                        label = (i % 2 == 0) if rng.random() < 0.5 else (i % 2 == 1)
                        ex = make_example(rng, ontology, hops, distractors, negation, label, cfg.shuffle_facts)
                        shots = [
                            make_example(
                                rng,
                                ontology,
                                hops,
                                distractors,
                                rng.random() < 0.5,
                                j % 2 == 0,
                                cfg.shuffle_facts,
                            )
                            for j in range(cfg.n_shots)
                        ]
                        yield ex, shots

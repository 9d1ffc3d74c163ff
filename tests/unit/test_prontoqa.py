"""The generator: labels checked by an independent proof search over the facts' text."""

from __future__ import annotations

import re

import pytest

from cotlens.circuits import fewshot
from cotlens.circuits.prompts import TRUE_PROPERTIES, TRUE_TAXONOMIES, GeneratorConfig, generate
from cotlens.errors import CotlensError

MEMBER = re.compile(r"^(\w+) is an? ([\w-]+)\.$")
SUBSUME = re.compile(r"^Every ([\w-]+) is (not )?an? ([\w-]+)\.$")
PROPERTY = re.compile(r"^Every ([\w-]+) is (not )?([\w-]+)\.$")
QUERY = re.compile(r"^(\w+) is (not )?([\w-]+)$")

FULL = GeneratorConfig(seed=3, n_per_cell=4, hops=(1, 2, 3, 4, 5), n_shots=2)


def prove(facts: tuple[str, ...], query: str) -> bool:
    """Forward chaining written independently of the generator."""
    members, isa, not_isa, props = {}, {}, {}, {}
    for f in facts:
        if m := SUBSUME.match(f):
            (not_isa if m.group(2) else isa).setdefault(m.group(1), set()).add(m.group(3))
        elif m := MEMBER.match(f):
            members.setdefault(m.group(1), set()).add(m.group(2))
        elif m := PROPERTY.match(f):
            props.setdefault(m.group(1), set()).add((m.group(3), m.group(2) is None))
        else:
            raise AssertionError(f"unparseable fact {f!r}")
    q = QUERY.match(query)
    assert q, query
    entity, neg, prop = q.groups()
    reach, todo = set(), list(members[entity])
    while todo:
        c = todo.pop()
        if c not in reach:
            reach.add(c)
            todo += list(isa.get(c, ()))
    negated_concepts = {d for c in reach for d in not_isa.get(c, ())}
    assert not (reach & negated_concepts), "the entity is both X and not X"
    derived = {pol for c in reach for (p, pol) in props.get(c, ()) if p == prop}
    assert len(derived) == 1, f"property {prop} derived as {derived} (must be exactly one polarity)"
    return derived.pop() == (neg is None)


def test_every_label_matches_independent_proof() -> None:
    n = 0
    for ex, shots in generate(FULL):
        for e in (ex, *shots):
            assert prove(e.facts, e.query) == e.label, e
            n += 1
    assert n == 3 * 5 * 2 * 2 * 4 * 3


def test_gold_chain_shape_and_hops() -> None:
    for ex, _ in generate(FULL):
        assert len(ex.gold_cot) == 2 * ex.hops + 1
        assert ex.gold_cot[0] in ex.facts  # the chain starts from the membership fact
        for i in range(1, len(ex.gold_cot), 2):
            assert ex.gold_cot[i] in ex.facts  # odd steps restate a rule from the context
        assert (ex.gold_cot[-1].rstrip(".") == ex.query) == ex.label  # True iff the query is the conclusion
        n_distract = sum(1 for f in ex.facts if f not in ex.gold_cot)
        assert n_distract == (ex.hops if ex.distractors == "relevant" else 0)


def test_labels_balanced_and_negation_present() -> None:
    exs = [ex for ex, _ in generate(FULL)]
    frac = sum(e.label for e in exs) / len(exs)
    assert 0.4 <= frac <= 0.6
    assert all(("not" in e.gold_cot[-1]) == e.negation for e in exs)


def test_true_and_false_ontologies_agree_or_disagree_with_the_world() -> None:
    truth = {
        (c, p): hold
        for t in TRUE_TAXONOMIES
        for i, c in enumerate(t)
        for a in t[i:]
        for p, hold in TRUE_PROPERTIES.get(a, ())
    }
    order = {(t[i], t[j]) for t in TRUE_TAXONOMIES for i in range(len(t)) for j in range(i + 1, len(t))}
    for ex, _ in generate(FULL):
        if ex.ontology == "fictional":
            continue
        rule_true = all((ex.chain[i], ex.chain[i + 1]) in order for i in range(ex.hops - 1))
        prop_true = truth.get((ex.chain[-1], ex.prop)) == (not ex.negation) if ex.ontology == "true" else None
        if ex.ontology == "true":
            assert rule_true and prop_true, ex
        else:
            polarity = not ex.negation
            real = truth.get((ex.chain[-1], ex.prop))
            assert (not rule_true) or real != polarity or ex.hops == 1, ex


def test_deterministic_and_seed_sensitive() -> None:
    a = [fewshot.prompt(e, s) for e, s in generate(FULL)]
    b = [fewshot.prompt(e, s) for e, s in generate(FULL)]
    c = [
        fewshot.prompt(e, s)
        for e, s in generate(GeneratorConfig(seed=4, n_per_cell=4, hops=(1, 2, 3, 4, 5), n_shots=2))
    ]
    assert a == b
    assert a != c


def test_prompt_format() -> None:
    ex, shots = next(generate(GeneratorConfig(n_shots=6)))
    p = fewshot.prompt(ex, shots)
    assert p.count("### Input:\n") == 7 and p.endswith(". Let us think step by step.\n### Response:\n")
    assert f"True or false: {ex.query}. Let us" in p
    nf = fewshot.prompt(ex, shots, with_facts=False)
    assert all(f not in nf.split("### Input:\n")[-1] for f in ex.facts)


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"hops": (0,)}, "hops"),
        ({"hops": (6,)}, "hops"),
        ({"ontologies": ("fake",)}, "ontologies"),
        ({"n_per_cell": 0}, "empty"),
    ],
)
def test_bad_generator_config(kw: dict, key: str) -> None:
    with pytest.raises(CotlensError, match=key):
        GeneratorConfig(**kw)

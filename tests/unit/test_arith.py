"""Study 2 prompts: integral seeded problems, the seven variants, shot-independent parsing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cotlens.errors import CotlensError
from cotlens.neurons import prompts as A


def _eval(steps: tuple[A.Step, ...]) -> None:
    for s in steps:
        want = {"+": s.a + s.b, "-": s.a - s.b, "*": s.a * s.b, "/": s.a // s.b}[s.op]
        assert s.result == want and s.result >= 0
        if s.op == "/":
            assert s.a % s.b == 0


def test_problems_are_integral_seeded_and_cover_steps() -> None:
    cfg = A.ArithConfig(seed=3, n_problems=60)
    ps = A.generate(cfg)
    assert ps == A.generate(cfg) and ps != A.generate(A.ArithConfig(seed=4, n_problems=60))
    assert {len(p.steps) for p in ps} == {1, 2, 3, 4}
    assert set().union(*(p.ops for p in ps)) == set(A.OPS)
    for p in ps:
        _eval(p.steps)
        assert all(b.a == a.result for a, b in zip(p.steps, p.steps[1:], strict=False))  # chained
        assert p.answer == p.steps[-1].result and p.question.endswith("have now?")


def test_variants_differ_as_specified() -> None:
    cfg = A.ArithConfig(n_problems=2, n_shots=8)
    ex = A.exemplars(cfg)
    shot = ex["mixed"][3]
    full, text, formula = (A.cot(shot, v) for v in ("full", "text_only", "formula_only"))
    assert all(f"{s.op} {s.b} = {s.result}" in full for s in shot.steps)
    assert not re.search(r"[-+*/] \d+ =", text) and shot.name in text
    assert shot.name not in formula and formula.count("=") == len(shot.steps)
    wrong = A.cot(shot, "wrong_results")
    assert all(f"= {s.result}." not in wrong for s in shot.steps)
    names = A.cot(shot, "names")
    assert not any(f"= {s.result}." in names for s in shot.steps) and "Alpha" in names
    for v in A.VARIANTS:  # the answer line is kept in every variant
        assert A.cot(shot, v).endswith(f"The answer is {shot.answer}.")
    assert all(set(p.ops) == {"+"} for p in ex["add"]) and all(set(p.ops) == {"*"} for p in ex["mul"])
    assert [p.name for p in ex["add"]] == [p.name for p in ex["mixed"]]  # the same stories
    with pytest.raises(CotlensError, match="unknown CoT variant"):
        A.cot(shot, "nope")


def test_parsing_does_not_depend_on_the_number_of_shots() -> None:
    cfg = A.ArithConfig(n_problems=1, n_shots=8)
    q = A.generate(cfg)[0]
    gen = " Ava buys 3 more, so 2 + 3 = 5. The answer is 5.\n\nQuestion: x\nAnswer: The answer is 9."
    for k in (0, 1, 8):
        prompt = A.build_prompt(q.question, A.exemplars(A.ArithConfig(n_shots=k))["mixed"], "full")
        assert prompt.count("Question:") == k + 1 and prompt.endswith("Answer:")
        assert A.parse_answer(gen) == 5  # only the generated text is parsed
    assert A.parse_answer(" so 1,200 + 5 = 1,205. The answer is 1,205.") == 1205
    assert A.parse_answer(" I do not know.") is None
    assert A.is_done(" The answer is 12.") and not A.is_done(" The answer is 12")


def test_gsm8k_loader(tmp_path: Path) -> None:
    f = tmp_path / "g.jsonl"
    rows = [{"question": "Q1?", "answer": "3+4=<<3+4=7>>7\n#### 7"}, {"question": "Q2?", "answer": "#### 1,000"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ps = A.load_gsm8k(f)
    assert [(p.question, p.answer) for p in ps] == [("Q1?", 7), ("Q2?", 1000)]
    f.write_text('{"question": "Q"}\n')
    with pytest.raises(CotlensError, match=r"g.jsonl:1 is not a GSM8K record"):
        A.load_gsm8k(f)
    with pytest.raises(CotlensError, match="does not exist"):
        A.load_gsm8k(tmp_path / "missing.jsonl")
    # hostile files: each one error naming the file and the config key
    with pytest.raises(CotlensError, match="is a directory") as e:
        A.load_gsm8k(tmp_path)
    assert "neurons.prompts.gsm8k_path" in str(e.value)
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(CotlensError, match="is not UTF-8 text .*binary, or another encoding"):
        A.load_gsm8k(f)
    f.write_bytes('{"question": "Caf\u00e9?", "answer": "#### 1"}\n'.encode("latin-1"))
    with pytest.raises(CotlensError, match="is not UTF-8 text"):
        A.load_gsm8k(f)
    f.write_text('["Q", "#### 1"]\n')
    with pytest.raises(CotlensError, match=r"g.jsonl:1 is a JSON list, not an object"):
        A.load_gsm8k(f)
    f.write_text("{not json\n")
    with pytest.raises(CotlensError, match=r"g.jsonl:1 is not JSON"):
        A.load_gsm8k(f)


def test_bad_config_is_one_clear_error() -> None:
    with pytest.raises(CotlensError, match=r"neurons.prompts.min_steps..max_steps is 3..2"):
        A.ArithConfig(min_steps=3, max_steps=2)
    with pytest.raises(CotlensError, match=r"neurons.prompts.ops is \['\^'\]"):
        A.ArithConfig(ops=("^",))
    with pytest.raises(CotlensError, match="neurons.prompts.n_problems is 0"):
        A.ArithConfig(n_problems=0)

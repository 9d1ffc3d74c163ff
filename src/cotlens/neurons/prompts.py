"""Seeded GSM8K-style word problems and the seven 8-shot CoT prompt variants of Study 2.

A problem is a short story: a start count, then 1-4 steps, each one of + - * /, with
every intermediate result and the answer a non-negative integer. Its gold CoT writes
one sentence per step, "<text>, so <a> <op> <b> = <r>.", then "The answer is <n>."

Variants (Rai & Yao 2024, after Madaan & Yazdanbakhsh 2022), all built from the same
exemplar stories:
- ``full``: text and formula;
- ``text_only``: formula removed ("..., so she has 8 apples.");
- ``formula_only``: text removed ("3 + 5 = 8.");
- ``add_only`` / ``mul_only``: exemplars whose steps all use + (resp. *), the same
  stories with the operators forced;
- ``wrong_results``: every intermediate result in the exemplars is wrong;
- ``names``: every intermediate result is replaced by a name (out of distribution).
The final "The answer is <n>." line is kept in every variant, so the answer is parsed
the same way whatever the variant and the number of shots.

Torch-free.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cotlens.errors import CotlensError

OPS = ("+", "-", "*", "/")
VARIANTS = ("full", "text_only", "formula_only", "add_only", "mul_only", "wrong_results", "names")
NAMES = ("Ava", "Ben", "Cleo", "Dev", "Eli", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kira", "Leo")
ITEMS = ("apples", "books", "coins", "shells", "stamps", "marbles", "pencils", "cards")
PLACEHOLDERS = ("Alpha", "Bravo", "Delta", "Echo", "Kilo", "Lima", "Oscar", "Romeo")
ANSWER_RE = re.compile(r"[Tt]he answer is\s*\$?\s*(-?[\d,]*\d)")
QUESTION = "Question: "
ANSWER = "Answer:"


@dataclass(frozen=True)
class Step:
    a: int
    op: str
    b: int
    result: int
    text: str  # the step's sentence without its result, e.g. "Ava buys 5 more apples"


@dataclass(frozen=True)
class WordProblem:
    question: str
    steps: tuple[Step, ...]
    answer: int
    name: str = ""
    item: str = ""

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(s.op for s in self.steps)


@dataclass(frozen=True)
class ArithConfig:
    seed: int = 0
    n_problems: int = 40
    min_steps: int = 1
    max_steps: int = 4
    ops: tuple[str, ...] = OPS
    n_shots: int = 8
    gsm8k_path: str = ""  # a local GSM8K JSONL: its questions replace the generated ones

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps <= 4:
            raise CotlensError(
                f"neurons.prompts.min_steps..max_steps is {self.min_steps}..{self.max_steps}",
                "use 1 <= min_steps <= max_steps <= 4",
            )
        bad = [o for o in self.ops if o not in OPS]
        if bad or not self.ops:
            raise CotlensError(f"neurons.prompts.ops is {list(self.ops)}", f"use a non-empty subset of {list(OPS)}")
        if self.n_problems < 1 or self.n_shots < 0:
            raise CotlensError(
                f"neurons.prompts.n_problems is {self.n_problems} and neurons.prompts.n_shots {self.n_shots}",
                "use n_problems >= 1 and n_shots >= 0",
            )


def _step(rng: random.Random, x: int, op: str, name: str, item: str) -> Step | None:
    if op == "+":
        b = rng.randint(2, 20)
        return Step(x, op, b, x + b, f"{name} buys {b} more {item}")
    if op == "-":
        if x < 3:
            return None
        b = rng.randint(1, x - 1)
        return Step(x, op, b, x - b, f"{name} gives away {b} {item}")
    if op == "*":
        if x > 60:
            return None
        b = rng.randint(2, 5)
        return Step(x, op, b, x * b, f"{name} then gets {b} times as many {item}")
    divisors = [d for d in range(2, 10) if x % d == 0 and x // d >= 1]
    if not divisors:
        return None
    b = rng.choice(divisors)
    return Step(x, op, b, x // b, f"{name} splits the {item} into {b} equal piles and keeps one pile")


def make_problem(rng: random.Random, n_steps: int, ops: Sequence[str], name: str, item: str) -> WordProblem:
    """One story of ``n_steps`` steps drawn from ``ops`` (a step that cannot stay integral is redrawn)."""
    for _ in range(1000):
        x = rng.randint(2, 30)
        start, steps = x, []
        for _ in range(n_steps):
            s = None
            for _ in range(20):
                s = _step(rng, x, rng.choice(list(ops)), name, item)
                if s is not None:
                    break
            if s is None:
                break
            steps.append(s)
            x = s.result
        if len(steps) == n_steps:
            story = f"{name} has {start} {item}. " + " ".join(_question_sentence(s) for s in steps)
            return WordProblem(f"{story} How many {item} does {name} have now?", tuple(steps), x, name, item)
    raise CotlensError(f"no integral problem with ops {list(ops)} and {n_steps} steps", "allow more operators")


def _question_sentence(s: Step) -> str:
    return s.text[0].upper() + s.text[1:] + "."


def generate(cfg: ArithConfig) -> list[WordProblem]:
    """``cfg.n_problems`` problems, steps spread evenly over min_steps..max_steps (seeded)."""
    rng = random.Random(cfg.seed)
    counts = list(range(cfg.min_steps, cfg.max_steps + 1))
    return [
        make_problem(rng, counts[i % len(counts)], cfg.ops, rng.choice(NAMES), rng.choice(ITEMS))
        for i in range(cfg.n_problems)
    ]


def exemplars(cfg: ArithConfig) -> dict[str, list[WordProblem]]:
    """The exemplar stories: one mixed set, and the same names/items/step counts with the
    operators forced to + or to * (for ``add_only`` / ``mul_only``)."""
    rng = random.Random(cfg.seed + 7919)  # disjoint from the test problems' stream
    plan = [(1 + i % 4, NAMES[i % len(NAMES)], ITEMS[(3 * i) % len(ITEMS)]) for i in range(cfg.n_shots)]
    out: dict[str, list[WordProblem]] = {}
    for key, ops in (("mixed", OPS), ("add", ("+",)), ("mul", ("*",))):
        r = random.Random(rng.random())
        out[key] = [make_problem(r, n, ops, name, item) for n, name, item in plan]
    return out


def cot(p: WordProblem, variant: str, rng: random.Random | None = None) -> str:
    """The CoT text of an exemplar under ``variant`` (add_only/mul_only use the full form)."""
    if variant not in VARIANTS:
        raise CotlensError(f"unknown CoT variant {variant!r}", f"use one of {list(VARIANTS)}")
    rng = rng or random.Random(p.answer)
    parts = []
    prev = None  # what the next step writes for its left operand
    for i, s in enumerate(p.steps):
        a = prev if prev is not None else str(s.a)
        if variant == "wrong_results":
            r = str(s.result + rng.choice([-1, 1]) * rng.randint(1, 9))
        elif variant == "names":
            r = PLACEHOLDERS[i % len(PLACEHOLDERS)]
        else:
            r = str(s.result)
        if variant == "text_only":
            parts.append(f"{s.text}, so {p.name} has {r} {p.item}.")
        elif variant == "formula_only":
            parts.append(f"{a} {s.op} {s.b} = {r}.")
        else:
            parts.append(f"{s.text}, so {a} {s.op} {s.b} = {r}.")
        prev = r
    parts.append(f"The answer is {p.answer}.")
    return " ".join(parts)


def build_prompt(question: str, shots: Sequence[WordProblem], variant: str) -> str:
    """k-shot prompt: "Question: ...\\nAnswer: <cot>\\n\\n" per exemplar, then the question."""
    rng = random.Random(0)
    blocks = [f"{QUESTION}{s.question}\n{ANSWER} {cot(s, variant, rng)}\n\n" for s in shots]
    return "".join(blocks) + f"{QUESTION}{question}\n{ANSWER}"


def variant_shots(ex: dict[str, list[WordProblem]], variant: str) -> list[WordProblem]:
    return ex["add"] if variant == "add_only" else ex["mul"] if variant == "mul_only" else ex["mixed"]


def cut(text: str) -> str:
    """The model's answer to the last question: the text before it starts another one."""
    for stop in ("\n\n", QUESTION.strip()):
        i = text.find(stop)
        if i >= 0:
            text = text[:i]
    return text


def parse_answer(text: str) -> int | None:
    """The number after the first "The answer is" in the generated text (shots never reach it)."""
    m = ANSWER_RE.search(cut(text))
    return int(m.group(1).replace(",", "")) if m else None


def is_done(text: str) -> bool:
    """Stop generating once the answer sentence is complete or a new question starts."""
    if QUESTION.strip() in text or "\n\n" in text:
        return True
    m = ANSWER_RE.search(text)
    return m is not None and m.end() < len(text.rstrip())


def load_gsm8k(path: str | Path, limit: int | None = None) -> list[WordProblem]:
    """GSM8K JSONL ({"question", "answer": "... #### N"}) -> problems without step structure."""
    p = Path(path)
    fix = 'give neurons.prompts.gsm8k_path a GSM8K JSONL file (one {"question", "answer"} object per line)'
    if p.is_dir():
        raise CotlensError(f"GSM8K path {p} is a directory", fix)
    if not p.is_file():
        raise CotlensError(f"GSM8K file {p} does not exist", fix)
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise CotlensError(
            f"GSM8K file {p} is not UTF-8 text (byte {e.start}: {e.reason}): binary, or another encoding", fix
        ) from None
    out = []
    for ln, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise CotlensError(f"{p}:{ln} is not JSON ({e.msg})", fix) from None
        if not isinstance(row, dict):
            raise CotlensError(f"{p}:{ln} is a JSON {type(row).__name__}, not an object", fix)
        try:
            n = int(str(row["answer"]).split("####")[-1].strip().replace(",", ""))
            q = str(row["question"]).strip()
        except (ValueError, KeyError) as e:
            raise CotlensError(
                f"{p}:{ln} is not a GSM8K record (missing or bad {e})",
                'each line needs "question" and "answer" ending "#### N"',
            ) from None
        out.append(WordProblem(q, (), n))
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise CotlensError(f"GSM8K file {p} holds no problems", "check the file")
    return out

from __future__ import annotations

from cotlens.circuits import parsing


def test_steps_and_answer() -> None:
    text = "Wren is a wumpus. Every wumpus is bright. Wren is bright. So the answer is True.\n\n### Input:\nMax is"
    p = parsing.parse_response(text)
    assert p.answer == "True"
    assert p.steps == ("Wren is a wumpus.", "Every wumpus is bright.", "Wren is bright.")
    assert [text[a:b] for a, b in p.step_spans] == list(p.steps)
    assert p.answer_span is not None and text[slice(*p.answer_span)] == "True"


def test_answer_after_delimiter_is_ignored() -> None:
    p = parsing.parse_response("Wren is a wumpus.\n\n### Input:\nSo the answer is False.")
    assert p.answer is None and p.steps == ("Wren is a wumpus.",)


def test_lowercase_answer_and_unfinished_text() -> None:
    assert parsing.parse_response("Rex is cold. so the answer is false.").answer == "False"
    p = parsing.parse_response("Rex is a dumpus. Every dumpus")
    assert p.answer is None and p.steps == ("Rex is a dumpus.",)


def test_stop_detection() -> None:
    assert not parsing.is_answer_stop("Rex is cold. So the answer is")
    assert not parsing.is_answer_stop("Rex is cold. So the answer is True")  # the word may go on
    assert parsing.is_answer_stop("Rex is cold. So the answer is True.")
    assert parsing.is_answer_stop("Rex is cold.\n\n")
    assert parsing.is_answer_stop("Rex is cold. ###")


def test_score_steps() -> None:
    gold = ["Wren is a wumpus.", "Every wumpus is bright.", "Wren is bright."]
    assert parsing.score_steps(["wren is a wumpus", "Every wumpus is dull.", "Wren is bright.", "Extra."], gold) == [
        True,
        False,
        True,
        False,
    ]


def test_char_to_token() -> None:
    ends = [4, 7, 12]  # tokens cover [0,4), [4,7), [7,12)
    assert [parsing.char_to_token(ends, c) for c in (0, 3, 4, 6, 7, 11, 50)] == [0, 0, 1, 1, 2, 2, 2]

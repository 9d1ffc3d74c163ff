"""Digit confidence: exact probabilities on a hand-set model, with a digit-merging
tokenizer, and MC dropout behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cotlens.digits.methods import VocabText, align, mc_dropout, own_digits, reader, score, with_digit
from cotlens.digits.prompts import MultConfig, generate, render
from cotlens.errors import CotlensError

pytestmark = pytest.mark.integration

# Byte-level BPE whose merges join some digits: " 1234" -> "Ġ", "12", "34"; " 9" -> "Ġ", "9".
SINGLES = list("0123456789") + ["Ġ", "=", "*", "x", "\u010a"]
MERGES = [("1", "2"), ("1", "3"), ("1", "5"), ("3", "4"), ("3", "5")]


def merging_tokenizer(tmp: Path):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SINGLES + ["".join(m) for m in MERGES] + ["<pad>"])}
    bpe = models.BPE(vocab=vocab, merges=MERGES)
    tk = Tokenizer(bpe)
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>")


class Bigram(torch.nn.Module):
    """Next-token distribution = a hand-set table row of the current token."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.table = torch.full((vocab, vocab), 1.0 / vocab)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(ids.shape[0])[:, None]
        return self.table[ids[rows, pos]]


def test_merged_digits_give_the_known_probabilities(tmp_path: Path) -> None:
    tok = merging_tokenizer(tmp_path)
    vt = VocabText.from_tokenizer(tok)
    v = tok.get_vocab()
    ids, places = align(tok, vt, "3x4=", " 1234")
    assert tok.convert_ids_to_tokens(ids) == ["3", "x", "4", "=", "Ġ", "12", "34"]
    assert [(p.digit, p.pos, p.inside) for p in places] == [(1, 4, ""), (2, 4, "1"), (3, 5, ""), (4, 5, "3")]

    model = Bigram(len(tok))
    after_space = torch.zeros(len(tok))
    for t, p in (("1", 0.1), ("12", 0.3), ("13", 0.2), ("15", 0.1), ("4", 0.3)):
        after_space[v[t]] = p
    after_12 = torch.zeros(len(tok))
    for t, p in (("34", 0.6), ("35", 0.2), ("5", 0.2)):
        after_12[v[t]] = p
    model.table[v["Ġ"]] = after_space
    model.table[v["12"]] = after_12

    (dists,) = score(model, vt, [ids], [places], v["<pad>"], torch.device("cpu"))
    got = [float(d[p.digit]) for d, p in zip(dists, places, strict=True)]
    # place 0: the next text starts with "1": "1" + "12" + "13" + "15"
    # place 1: given "1" inside the token: "12" among {"12", "13", "15"}
    # place 2: after "12", text starting with "3": "34" + "35"
    # place 3: given "3": "34" among {"34", "35"}
    np.testing.assert_allclose(got, [0.7, 0.3 / 0.6, 0.8, 0.6 / 0.8], rtol=1e-6)
    assert int(np.argmax(dists[0])) == 1 and int(np.argmax(dists[1])) == 2


def test_own_digits_follow_the_model_and_keep_the_correct_last_digit(tmp_path: Path) -> None:
    tok = merging_tokenizer(tmp_path)
    vt = VocabText.from_tokenizer(tok)
    v = tok.get_vocab()
    model = Bigram(len(tok))
    row = torch.zeros(len(tok))
    row[v["7"]], row[v["4"]], row[v["12"]] = 0.6, 0.1, 0.3  # digit 7 wins every place (0.6 vs 0.3 + 0)
    model.table[:] = row
    read = reader(model, vt, v["<pad>"], torch.device("cpu"))
    got = own_digits(read, tok, vt, ["3x4=", "3x3="], [" 1234", " 9"])
    assert got == [" 7774", " 9"]  # a one-digit answer has no higher digit to replace
    ids, places = align(tok, vt, "3x4=", got[0])
    (dists,) = score(model, vt, [ids], [places], v["<pad>"], torch.device("cpu"))
    assert dists[-1][4] == pytest.approx(0.1)  # the correct last digit, after the model's own digits
    assert with_digit(" 1,234", 2, 9) == " 1,294"


def test_single_digit_tokens_give_the_softmax_probability(tmp_path: Path) -> None:
    tok = merging_tokenizer(tmp_path)
    vt = VocabText.from_tokenizer(tok)
    v = tok.get_vocab()
    ids, places = align(tok, vt, "3x3=", " 9")
    assert tok.convert_ids_to_tokens(ids)[-2:] == ["Ġ", "9"]
    model = Bigram(len(tok))
    row = torch.softmax(torch.randn(len(tok), generator=torch.Generator().manual_seed(0)), 0)
    model.table[v["Ġ"]] = row
    (dists,) = score(model, vt, [ids], [places], v["<pad>"], torch.device("cpu"))
    assert dists[0][9] == pytest.approx(float(row[v["9"]]), rel=1e-6)
    # every digit's mass comes from the single-digit token and the merged tokens that start with it
    assert dists[0][1] == pytest.approx(float(row[[v[t] for t in ("1", "12", "13", "15")]].sum()), rel=1e-6)


def test_real_tokenizer_alignment(tiny_prepared: Path) -> None:
    from cotlens.models.loading import load

    lm = load(tiny_prepared, "float32", "cpu")
    vt = VocabText.from_tokenizer(lm.tokenizer)
    prompt, answer = render("{a} * {b} = {c}", "c", 123, 45)
    ids, places = align(lm.tokenizer, vt, prompt, answer)
    assert [p.digit for p in places] == [5, 5, 3, 5]
    for p in places:  # the read position is right before the token that holds the digit
        nxt = vt.texts[ids[p.pos + 1]]
        assert nxt[len(p.inside)] == str(p.digit)


def test_the_cached_prompt_reader_equals_whole_sequence_reads(tiny_prepared: Path) -> None:
    """Each problem's prompt runs once (PrefixCache); every setting and every round of own
    digits reads only its answer tokens: the same distributions as the whole sequences, the
    same own digits; a sequence that does not start with its owner's prefix is read whole."""
    from cotlens.core.batch import PrefixCache
    from cotlens.digits.methods import position_forward, prompt_prefix
    from cotlens.models.loading import load

    lm = load(tiny_prepared, "float32", "cpu")
    vt = VocabText.from_tokenizer(lm.tokenizer)
    fwd, dev, pad_id = position_forward(lm), torch.device("cpu"), int(lm.tokenizer.pad_token_id)
    probs = list(generate(MultConfig(n_digits=(2, 4), m_digits=(3,), n_per_cell=2, n_shots=2, seed=3)))
    prompts, answers = [p.prompt for p in probs], [p.answer for p in probs]
    aligned = [align(lm.tokenizer, vt, q, a) for q, a in zip(prompts, answers, strict=True)]
    cache = PrefixCache(lm.model, lm.adapter, [prompt_prefix(*x) for x in aligned], pad_id, dev)
    cached, whole = reader(fwd, vt, pad_id, dev, cache), reader(fwd, vt, pad_id, dev)
    own = own_digits(whole, lm.tokenizer, vt, prompts, answers)
    assert own_digits(cached, lm.tokenizer, vt, prompts, answers) == own
    seqs = [x[0] for x in aligned] + [align(lm.tokenizer, vt, q, a)[0] for q, a in zip(prompts, own, strict=True)]
    places = [x[1] for x in aligned] * 2
    owners = [*range(len(probs))] * 2
    foreign = list(reversed(owners))  # sequences of other problems: read whole
    for who in (owners, foreign):
        got, want = cached(who, seqs, places), whole(who, seqs, places)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(np.stack(g), np.stack(w), atol=2e-6)
    assert not cache.owns(foreign[0], seqs[0])
    with pytest.raises(ValueError, match="inside the cached prefix"):
        cache.logits_at([0], [seqs[0]], torch.tensor([[0]]))


def test_mc_dropout_zero_rate_is_exact_and_positive_rate_varies(tiny_prepared: Path) -> None:
    from cotlens.digits.methods import position_forward
    from cotlens.models.loading import load

    lm = load(tiny_prepared, "float32", "cpu")
    fwd = position_forward(lm)
    ids = torch.randint(4, lm.dims.vocab, (2, 12))
    mask = torch.ones_like(ids)
    pos = torch.tensor([[10, 11], [3, 4]])
    base = fwd(ids, mask, pos)
    with mc_dropout(lm.model, lm.adapter, 0.0, seed=0):
        torch.testing.assert_close(fwd(ids, mask, pos), base)
    with mc_dropout(lm.model, lm.adapter, 0.3, seed=0):
        a = fwd(ids, mask, pos)
    with mc_dropout(lm.model, lm.adapter, 0.3, seed=0):
        b = fwd(ids, mask, pos)
    with mc_dropout(lm.model, lm.adapter, 0.3, seed=1):
        c = fwd(ids, mask, pos)
    torch.testing.assert_close(a, b)  # seeded
    assert not torch.allclose(a, base) and not torch.allclose(a, c)
    torch.testing.assert_close(fwd(ids, mask, pos), base)  # hooks removed


def test_mc_dropout_paired_rows_share_their_masks(tiny_prepared: Path) -> None:
    """Common random numbers: two rows of one problem (same group) get the same dropout
    masks, so the same input gives the same output; rows of other groups do not."""
    from cotlens.digits.methods import position_forward
    from cotlens.models.loading import load

    lm = load(tiny_prepared, "float32", "cpu")
    fwd = position_forward(lm)
    row = torch.randint(4, lm.dims.vocab, (1, 12))
    ids = row.repeat(3, 1)
    mask = torch.ones_like(ids)
    pos = torch.tensor([[10, 11]] * 3)
    with mc_dropout(lm.model, lm.adapter, 0.3, seed=0, groups=torch.tensor([0, 0, 1])):
        out = fwd(ids, mask, pos)
    torch.testing.assert_close(out[0], out[1])  # same problem: same masks
    assert not torch.allclose(out[0], out[2])  # another problem: its own masks


def test_multiplication_prompts() -> None:
    probs = list(generate(MultConfig(n_digits=(1, 3), m_digits=(2,), n_per_cell=5, n_shots=3)))
    assert len(probs) == 10
    for p in probs:
        assert len(str(p.a)) == p.n and len(str(p.b)) == p.m
        assert p.answer == f" {p.a * p.b}" and p.direct_answer == f" {(p.a * p.b) % 10}"
        assert p.prompt.endswith(f"{p.a} * {p.b} =") and p.prompt.count("\n") == 3
        for line in p.prompt.split("\n")[:-1]:  # exemplars are correct products
            lhs, rhs = line.split(" = ")
            x, y = map(int, lhs.split(" * "))
            assert int(rhs) == x * y
    again = list(generate(MultConfig(n_digits=(1, 3), m_digits=(2,), n_per_cell=5, n_shots=3)))
    assert json.dumps([p.prompt for p in probs]) == json.dumps([p.prompt for p in again])
    with pytest.raises(CotlensError, match="exactly one"):
        MultConfig(template="{a} * {b} = ")
    with pytest.raises(
        CotlensError, match=r"digits.prompts.template = '\{a\} x \{b\} = \{x\}\{c\}' has the unknown field\(s\) \['x'\]"
    ):
        MultConfig(template="{a} x {b} = {x}{c}")
    with pytest.raises(CotlensError, match="digits.prompts.direct_template = .* is not a format string"):
        MultConfig(direct_template="{a} * {b} mod 10 = {d")

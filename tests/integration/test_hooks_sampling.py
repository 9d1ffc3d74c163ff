"""Hook capture vs transformers' own outputs; batched generation vs one-by-one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from unittest.mock import patch

import pytest
import torch

from cotlens.core.hooks import Capture
from cotlens.core.sampling import SampleConfig, generate_batch
from cotlens.models import zoo
from cotlens.models.adapters import get, layers
from cotlens.models.loading import load

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def eager(tiny_prepared: Path, device: str):  # type: ignore[no-untyped-def]
    return load(tiny_prepared, "float32", device, attn="eager")


def test_resid_capture_equals_output_hidden_states(eager) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    ids = torch.randint(4, eager.dims.vocab, (3, 17)).to(eager.device)
    with torch.no_grad(), Capture(eager.model, eager.adapter, ["resid"]) as cap:
        out = eager.model(ids, output_hidden_states=True)
    hs = out.hidden_states  # (embeddings, block 0, ..., final-normed last block)
    n = eager.dims.n_layers
    assert len(hs) == n + 1
    for layer in range(n - 1):
        torch.testing.assert_close(cap.out["resid"][layer], hs[layer + 1], rtol=0, atol=0)
    norm = get(eager.model, eager.adapter.final_norm)
    torch.testing.assert_close(norm(cap.out["resid"][n - 1]), hs[n], rtol=1e-6, atol=1e-6)


def test_head_outputs_recompose_the_attention_output(eager) -> None:  # type: ignore[no-untyped-def]
    """o_proj(concat of captured heads) equals the attention block's output."""
    ids = torch.randint(4, eager.dims.vocab, (2, 9)).to(eager.device)
    attn_out = {}
    blk = layers(eager.model, eager.adapter)[1]
    h = blk.self_attn.register_forward_hook(lambda m, a, o: attn_out.setdefault("x", o[0]))
    with torch.no_grad(), Capture(eager.model, eager.adapter, ["attn_heads", "mlp"]) as cap:
        eager.model(ids)
    h.remove()
    heads = cap.out["attn_heads"][1]
    d = eager.dims
    assert heads.shape == (2, 9, d.n_heads * d.head_dim) and cap.out["mlp"][1].shape == (2, 9, d.d_mlp)
    per_head = heads.view(2, 9, d.n_heads, d.head_dim)
    w = blk.self_attn.o_proj.weight.view(d.d_model, d.n_heads, d.head_dim)
    summed = torch.einsum("bthk,dhk->btd", per_head, w)  # sum of per-head contributions
    torch.testing.assert_close(summed, attn_out["x"], rtol=1e-5, atol=1e-5)


def test_position_gather_matches_full_capture(eager) -> None:  # type: ignore[no-untyped-def]
    ids = torch.randint(4, eager.dims.vocab, (2, 11)).to(eager.device)
    pos = torch.tensor([[0, 5, 10], [3, 3, 7]], device=eager.device)
    with torch.no_grad(), Capture(eager.model, eager.adapter, ["resid", "attn_heads"]) as full:
        eager.model(ids)
    with torch.no_grad(), Capture(eager.model, eager.adapter, ["resid", "attn_heads"], pos) as some:
        eager.model(ids)
    rows = torch.arange(2, device=eager.device)[:, None]
    for site in ("resid", "attn_heads"):
        for layer in range(eager.dims.n_layers):
            torch.testing.assert_close(some.out[site][layer], full.out[site][layer][rows, pos], rtol=0, atol=0)
    assert some.stacked("resid").shape == (2, 3, eager.dims.n_layers, eager.dims.d_model)


def test_batched_greedy_equals_one_by_one(tiny_prepared: Path, device: str) -> None:
    lm = load(tiny_prepared, "float32", device, attn="sdpa")
    torch.manual_seed(1)
    prompts = [torch.randint(4, lm.dims.vocab, (n,)).tolist() for n in (5, 13, 9, 2)]
    cfg = SampleConfig(max_new_tokens=10, batch_size=4)
    pad = int(lm.tokenizer.pad_token_id)
    batched = generate_batch(lm.model, prompts, cfg, pad, set(), lambda ids: None, lm.device)
    for p, b in zip(prompts, batched, strict=True):
        (single,) = generate_batch(lm.model, [p], cfg, pad, set(), lambda ids: None, lm.device)
        assert b.token_ids == single.token_ids
        assert b.stop_reason == "max_tokens" and len(b.token_ids) == 10
        # and equals a full re-forward greedy decode without a cache
        seq = list(p)
        for _ in range(10):
            with torch.no_grad():
                seq.append(int(lm.model(torch.tensor([seq], device=lm.device)).logits[0, -1].argmax()))
        assert seq[len(p) :] == b.token_ids


def test_generate_all_is_generate_batch_batch_by_batch(tiny_prepared: Path, device: str) -> None:
    from cotlens.core.sampling import generate_all, stop_ids

    lm = load(tiny_prepared, "float32", device, attn="sdpa")
    torch.manual_seed(2)
    prompts = [torch.randint(4, lm.dims.vocab, (n,)).tolist() for n in (5, 13, 9, 2, 7)]
    cfg = SampleConfig(max_new_tokens=6, batch_size=2)
    eos, pad = stop_ids(lm.tokenizer)
    seen: list[tuple[str, int, int]] = []
    out = generate_all(
        lm,
        prompts,
        cfg,
        lambda ids: None,
        before_batch=lambda ids: seen.append(("before", -1, len(ids))),
        after_batch=lambda start, ids, gens: seen.append(("after", start, len(gens))),
    )
    want = [
        g
        for s in range(0, 5, 2)
        for g in generate_batch(lm.model, prompts[s : s + 2], cfg, pad, eos, lambda ids: None, lm.device)
    ]
    assert [g.token_ids for g in out] == [g.token_ids for g in want]
    assert seen == [
        ("before", -1, 2),
        ("after", 0, 2),
        ("before", -1, 2),
        ("after", 2, 2),
        ("before", -1, 1),
        ("after", 4, 1),
    ]


def test_stop_callback_and_eos(tiny_prepared: Path, device: str) -> None:
    lm = load(tiny_prepared, "float32", device)
    cfg = SampleConfig(max_new_tokens=8)
    out = generate_batch(
        lm.model, [[5, 6, 7]], cfg, 0, set(), lambda ids: "answer" if len(ids) == 3 else None, lm.device
    )
    assert out[0].stop_reason == "answer" and len(out[0].token_ids) == 3
    first = out[0].token_ids[0]
    out = generate_batch(lm.model, [[5, 6, 7]], cfg, 0, {first}, lambda ids: None, lm.device)
    assert out[0].stop_reason == "eos" and out[0].token_ids == []


def test_sampling_is_seeded(tiny_prepared: Path, device: str) -> None:
    lm = load(tiny_prepared, "float32", device)
    cfg = SampleConfig(max_new_tokens=6, temperature=1.0, top_p=0.9)
    runs = [
        generate_batch(
            lm.model, [[5, 6, 7]] * 2, cfg, 0, set(), lambda ids: None, lm.device, torch.Generator().manual_seed(s)
        )
        for s in (0, 0, 1)
    ]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_rows_that_stop_early_leave_the_others_unchanged(tiny_prepared: Path, device: str) -> None:
    """Dropping finished rows from the batch and the cache does not change the other rows."""
    lm = load(tiny_prepared, "float32", device)
    torch.manual_seed(2)
    prompts = [torch.randint(4, lm.dims.vocab, (n,)).tolist() for n in (6, 11, 3)]
    cfg = SampleConfig(max_new_tokens=9)
    pad = int(lm.tokenizer.pad_token_id)
    full = generate_batch(lm.model, prompts, cfg, pad, set(), lambda ids: None, lm.device)
    early = [full[0].token_ids[:2], full[2].token_ids[:5]]  # rows 0 and 2 stop here
    short = generate_batch(
        lm.model, prompts, cfg, pad, set(), lambda ids: "answer" if ids in early else None, lm.device
    )
    assert [g.token_ids for g in short] == [early[0], full[1].token_ids, early[1]]
    assert [g.stop_reason for g in short] == ["answer", "max_tokens", "answer"]


def test_shared_prefix_is_run_once_and_changes_nothing(tiny_prepared: Path, device: str) -> None:
    from cotlens.core.sampling import shared_prefix_len

    lm = load(tiny_prepared, "float32", device, attn="sdpa")
    torch.manual_seed(2)
    head = torch.randint(4, lm.dims.vocab, (20,)).tolist()
    prompts = [head + torch.randint(4, lm.dims.vocab, (n,)).tolist() for n in (3, 7, 1)]
    assert shared_prefix_len(prompts) == 20
    assert shared_prefix_len([head + [5], head + [5]]) == 20  # each row keeps a token of its own
    cfg = SampleConfig(max_new_tokens=8, batch_size=3)
    pad = int(lm.tokenizer.pad_token_id)
    seen: list[list[int]] = []
    batched = generate_batch(lm.model, prompts, cfg, pad, set(), lambda ids: None, lm.device, on_step=seen.append)
    assert seen[0] == [0, 1, 2] and len(seen) == 8  # the prefix forward is not announced
    for p, b in zip(prompts, batched, strict=True):
        (single,) = generate_batch(lm.model, [p], cfg, pad, set(), lambda ids: None, lm.device)
        assert b.token_ids == single.token_ids


def test_groups_with_prefixes_of_their_own_run_each_once_and_change_nothing(tiny_prepared: Path, device: str) -> None:
    """Prompt variants side by side: the groups share no prefix, each group's prompts share
    one of its own (different lengths): each is run once, left-padded to one width, and
    every row generates what it generates alone."""
    from cotlens.core.sampling import group_prefixes

    lm = load(tiny_prepared, "float32", device, attn="sdpa")
    torch.manual_seed(3)
    heads = [torch.randint(4, lm.dims.vocab, (n,)).tolist() for n in (17, 26)]
    own = [torch.randint(4, lm.dims.vocab, (n,)).tolist() for n in (3, 6, 2, 5)]
    prompts = [heads[0] + own[0], heads[1] + own[1], heads[0] + own[2], heads[1] + own[3]]
    groups = [0, 1, 0, 1]
    assert group_prefixes(prompts, groups, [0, 1]) == heads
    assert group_prefixes(prompts, [0, 0, 0, 0], [0]) == []  # one group: only a prefix all share
    assert group_prefixes(prompts, [0, 1, 2, 1], [0, 1, 2]) == []  # a group of one prompt: none
    # the groups' prompts all begin alike: each group's own prefix where it is longer
    pre = list(range(100, 118))
    both = [pre + p for p in prompts]
    assert group_prefixes(both, groups, [0, 1]) == [pre + h for h in heads]
    assert group_prefixes(both[:2] * 2, [0, 0, 1, 1], [0, 1]) == [pre] * 2  # the same prompts: the common one
    cfg = SampleConfig(max_new_tokens=7, batch_size=4)
    pad = int(lm.tokenizer.pad_token_id)
    shapes: list[tuple[int, ...]] = []
    logits: list[torch.Tensor] = []
    pre = lm.model.register_forward_pre_hook(
        lambda _m, _a, kw: shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    post = lm.model.register_forward_hook(lambda _m, _a, out: logits.append(out.logits[:, -1].clone()))
    try:
        batched = generate_batch(
            lm.model, prompts, cfg, pad, set(), lambda ids: None, lm.device, groups=groups, on_groups=lambda g: None
        )
        assert shapes[0] == (2, 26)  # the two prefixes in one forward, the shorter left-padded
        assert shapes[1] == (4, 6)  # then the rows' own parts
        first = logits[1]  # each row's first next-token distribution
        for i, (p, b) in enumerate(zip(prompts, batched, strict=True)):
            logits.clear()
            (single,) = generate_batch(lm.model, [p], cfg, pad, set(), lambda ids: None, lm.device)
            assert b.token_ids == single.token_ids
            torch.testing.assert_close(first[i], logits[0][0], rtol=0, atol=1e-4 * float(logits[0].abs().max()))
    finally:
        pre.remove()
        post.remove()


@pytest.mark.parametrize("family", ["mistral", "gemma2", "llama"])
def test_a_prefix_run_once_or_a_split_never_puts_padding_inside_a_sliding_window(family: str) -> None:
    """A sliding window counts cache slots: padding between a prefix run once and a row's
    own tokens would move real tokens in or out of it. On a windowed model (the zoo's
    window: 5 tokens) generate_batch runs each row whole; rows of different lengths after a
    shared prefix, or split, generate what plain greedy decoding without a cache does."""
    m = zoo.perturb(zoo.build(family))
    head = list(range(50, 70))
    prompts = [head + [5, 9, 11], head + [7, 12, 13, 5, 9, 40, 41]]

    def plain(p: list[int], n: int = 5) -> list[int]:
        seq = list(p)
        for _ in range(n):
            with torch.no_grad():
                seq.append(int(m(torch.tensor([seq])).logits[0, -1].argmax()))
        return seq[len(p) :]

    want = [plain(p) for p in prompts]
    shapes: list[tuple[int, ...]] = []
    hook = m.register_forward_pre_hook(lambda _m, _a, kw: shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    kept: list[object] = []
    try:
        for kw in ({}, {"split": [22, 25], "on_split": lambda past, mask: kept.append(mask)}):
            shapes.clear()
            got = generate_batch(
                m, prompts, SampleConfig(max_new_tokens=5), 0, set(), lambda ids: None, torch.device("cpu"), **kw
            )
            assert [g.token_ids for g in got] == want, (family, kw)
            whole = shapes[0] == (2, 27)  # every row run whole, left-padded
            assert whole == (family != "llama"), (family, shapes[:2])
    finally:
        hook.remove()
    assert bool(kept) == (family == "llama")


def _suffix_logits(m: torch.nn.Module, fast: bool, groups: list[int], seed: int = 0) -> list[torch.Tensor]:
    """Logits of a generate_batch-shaped forward: one shared prefix per group (run once),
    each row's left-padded part after it, then one decode step; ``fast``: with
    ``models.gqa.cpu_gqa`` and ``sampling.spread_prefix``, else transformers' own path."""
    from cotlens.core.sampling import spread_prefix
    from cotlens.models.gqa import cpu_gqa

    cpu_gqa(fast)
    g = torch.Generator().manual_seed(seed)
    vocab, n_pre, b = int(m.config.vocab_size), 24, len(groups)
    heads = torch.randint(4, vocab, (max(groups) + 1, n_pre), generator=g)
    own = [torch.randint(4, vocab, (n,), generator=g).tolist() for n in (5, 9, 3, 7, 9, 1)[:b]]
    width = max(map(len, own))
    ids = torch.tensor([[0] * (width - len(o)) + o for o in own])
    mask = torch.tensor([[0] * (width - len(o)) + [1] * len(o) for o in own])
    pos = (mask.cumsum(-1) - 1).clamp(min=0) + n_pre
    mask = torch.cat([torch.ones((b, n_pre), dtype=mask.dtype), mask], 1)
    with torch.inference_mode():
        past = m(input_ids=heads, use_cache=True).past_key_values
        if fast:
            past = spread_prefix(past, groups, width + 2, torch.device("cpu"))
        elif len(set(groups)) == 1:
            past.batch_repeat_interleave(b)
        else:
            past.batch_select_indices(torch.tensor(groups))
        out = m(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=past, use_cache=True)
        step = out.logits[:, -1].argmax(-1)[:, None]
        mask = torch.cat([mask, torch.ones((b, 1), dtype=mask.dtype)], 1)
        nxt = m(input_ids=step, attention_mask=mask, position_ids=pos[:, -1:] + 1, past_key_values=out.past_key_values)
    return [out.logits, nxt.logits]


@pytest.mark.parametrize("family", zoo.FAMILIES)
def test_the_fast_prefix_and_grouped_attention_change_no_bit(family: str) -> None:
    """``models.gqa.cpu_gqa`` (torch's grouped kernel for masked multi-token forwards
    on the CPU, where transformers copies every key/value head) and
    ``sampling.spread_prefix`` (the shared prefix written straight into each row's growing
    cache) are speed only: a padded batch after a shared prefix, one group and three, then a
    decode step, gives bit-identical logits to transformers' own path, on every zoo family
    at the perturbed init (SDPA where the family has it, eager where it does not)."""
    from cotlens.models.gqa import cpu_gqa, cpu_gqa_on

    was = cpu_gqa_on()
    try:
        try:
            m = zoo.perturb(zoo.build(family, attn="sdpa"))
        except ValueError as e:  # no SDPA for this family: the cache half still applies
            assert "sdpa" in str(e).lower() or "scaled_dot_product" in str(e).lower(), e
            m = zoo.perturb(zoo.build(family, attn="eager"))
        kv_heads: dict[bool, list[int]] = {False: [], True: []}  # the key heads each SDPA call was given
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def spy(fast: bool) -> Callable[..., torch.Tensor]:
            def call(q: torch.Tensor, k: torch.Tensor, *a: object, **kw: object) -> torch.Tensor:
                kv_heads[fast].append(int(k.shape[1]))
                return sdpa(q, k, *a, **kw)  # type: ignore[arg-type]

            return call

        for groups in ([0, 0, 0, 0], [0, 0, 1, 1, 2, 2], [1, 0, 1, 2]):
            with patch.object(torch.nn.functional, "scaled_dot_product_attention", spy(False)):
                stock = _suffix_logits(m, False, groups)
            with patch.object(torch.nn.functional, "scaled_dot_product_attention", spy(True)):
                fast = _suffix_logits(m, True, groups)
            for a, f in zip(stock, fast, strict=True):
                assert torch.equal(a, f), (family, groups, (a - f).abs().max().item())
        kv, h = getattr(m.config, "num_key_value_heads", None), getattr(m.config, "num_attention_heads", None)
        if m.config._attn_implementation == "sdpa" and kv and h and kv < h:
            # the path under test was taken: transformers copies the keys to every head, the fast path never
            assert h in kv_heads[False] and kv_heads[True] and h not in kv_heads[True], (family, kv_heads)
    finally:
        cpu_gqa(was)

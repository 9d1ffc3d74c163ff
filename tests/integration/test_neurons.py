"""Study 2 on a known mechanism: one hand-set FFN neuron that writes "+" after digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cotlens.models.adapters import Adapted, adapter_for, dims, get, layers
from cotlens.neurons import methods as N
from cotlens.neurons import prompts as arith

pytestmark = pytest.mark.integration

LAYER, NEURON = 1, 37


@pytest.fixture(scope="module")
def plus_model(tmp_path_factory: pytest.TempPathFactory, device: str):  # type: ignore[no-untyped-def]
    """A tiny random Llama whose neuron (1, 37) fires on digit tokens and writes the "+" direction."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from cotlens.models.tiny import build_tiny_llama

    cfg = arith.ArithConfig(n_problems=30, n_shots=2)
    ex = arith.exemplars(cfg)
    corpus = [arith.build_prompt(p.question, ex["mixed"], v) for p in arith.generate(cfg) for v in arith.VARIANTS]
    src = build_tiny_llama(tmp_path_factory.mktemp("plus") / "m", corpus, layers=2, d_model=64, d_mlp=128)
    tok = AutoTokenizer.from_pretrained(src)
    m = LlamaForCausalLM.from_pretrained(src).eval()
    ad, d = adapter_for(m), dims(m)
    plus = tok.convert_tokens_to_ids("+")
    digits = [tok.convert_tokens_to_ids(str(k)) for k in range(10)]  # the single-digit tokens
    with torch.no_grad():
        emb = m.get_input_embeddings().weight
        trig = torch.nn.functional.normalize(emb[digits], dim=-1).sum(0)
        trig = trig / trig.norm()
        mlp = layers(m, ad)[LAYER].mlp
        mlp.gate_proj.weight[NEURON] = 20.0 * trig
        mlp.up_proj.weight[NEURON] = 20.0 * trig
        u = get(m, ad.unembed).weight[plus]
        # a second "add" token, so the neuron passes Rai & Yao's >= 2 concept-token filter
        vocab = tok.get_vocab()
        word = next(w for w in ("Ġplus", "Ġsum", "Ġadd", "Ġtotal", "Ġmore", "more") if w in vocab)
        u2 = get(m, ad.unembed).weight[vocab[word]]
        mlp.down_proj.weight[:, NEURON] = u / u.norm() + 0.8 * u2 / u2.norm()
    return m.to(device), tok, ad, d, plus, digits


def _digit_prompts(tok, digits: list[int], n: int, seed: int = 0) -> list[list[int]]:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    words = tok("Ava has apples and buys more so", add_special_tokens=False)["input_ids"]
    return [words + [digits[int(i)]] for i in torch.randint(0, len(digits), (n,), generator=g)]


def _next(m, prompts: list[list[int]]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    dev = next(m.parameters()).device
    with torch.no_grad():
        return m(input_ids=torch.tensor(prompts, device=dev)).logits[:, -1].argmax(-1).cpu()


def test_discovery_finds_labels_and_ablation_removes_the_plus_neuron(plus_model) -> None:  # type: ignore[no-untyped-def]
    from cotlens.core.sampling import SampleConfig, generate_batch

    m, tok, ad, d, plus, digits = plus_model
    prompts = _digit_prompts(tok, digits, 16)
    assert (_next(m, prompts) == plus).float().mean() > 0.9  # the mechanism works

    # discovery, in the generating forwards
    cfg = SampleConfig(max_new_tokens=3, batch_size=16)
    with N.NeuronScorer(Adapted(m, ad, d), k=4, batch=16) as sc:
        generate_batch(m, prompts, cfg, 0, set(), lambda ids: None, next(m.parameters()).device, on_step=sc.rows)
        sc.commit(list(range(16)))
    freq = sc.frequency()
    assert sc.total_tokens == 16 * 3
    best = divmod(int(freq.flatten().argmax()), d.d_mlp)
    assert best == (LAYER, NEURON)
    assert float(freq[LAYER, NEURON]) >= 0.3  # at least every digit-predicting step

    proj = N.project(m, ad, tok, LAYER, NEURON)
    assert proj.with_norm[0] == "+" and proj.without_norm[0] == "+"
    # a neuron that fires negative writes minus its weight: "+" is then its least promoted token
    neg = N.project_many(m, ad, tok, [(LAYER, NEURON)], top=len(tok), signs={(LAYER, NEURON): -0.3})
    assert neg[(LAYER, NEURON)].without_norm[-1] == "+" and neg[(LAYER, NEURON)].without_norm[0] != "+"
    assert N.label(proj.without_norm) == "add"  # two add tokens on top
    assert N.label(proj.without_norm, min_tokens=3) is None

    # ablation through hooks: zero removes "+", random neurons do not; weights untouched
    before = layers(m, ad)[LAYER].mlp.down_proj.weight.clone()
    with N.ablate(m, ad, {LAYER: [NEURON]}, "zero"):
        gone = (_next(m, prompts) == plus).float().mean()
    assert gone < 0.2
    for seed in range(3):
        rnd = N.random_like({LAYER: [NEURON]}, d, torch.Generator().manual_seed(seed))
        assert list(rnd) == [LAYER] and len(rnd[LAYER]) == 1 and rnd[LAYER] != [NEURON]
        with N.ablate(m, ad, rnd, "zero"):
            assert (_next(m, prompts) == plus).float().mean() > 0.9
    assert torch.equal(before, layers(m, ad)[LAYER].mlp.down_proj.weight)
    assert (_next(m, prompts) == plus).float().mean() > 0.9  # hooks removed


def test_mean_ablation_sets_the_mean(plus_model) -> None:  # type: ignore[no-untyped-def]
    from cotlens.core.hooks import Capture

    m, tok, ad, d, plus, digits = plus_model
    means = torch.zeros(d.n_layers, d.d_mlp, device=next(m.parameters()).device)
    means[LAYER, NEURON] = 0.25
    ids = torch.tensor(_digit_prompts(tok, digits, 2), device=means.device)
    with N.ablate(m, ad, {LAYER: [NEURON]}, "mean", means), Capture(m, ad, ["mlp"]) as cap, torch.no_grad():
        m(input_ids=ids)
    # Capture sees the edited input: the hook order is ablation first
    assert torch.allclose(cap.out["mlp"][LAYER][..., NEURON], torch.full_like(cap.out["mlp"][LAYER][..., NEURON], 0.25))
    with pytest.raises(ValueError, match="mean ablation needs"):
        with N.ablate(m, ad, {LAYER: [NEURON]}, "mean"):
            pass


def test_noise_ablation_equals_the_forward_with_noisy_value_vectors(plus_model) -> None:  # type: ignore[no-untyped-def]
    import copy

    m, tok, ad, d, plus, digits = plus_model
    ids = torch.tensor(_digit_prompts(tok, digits, 4), device=next(m.parameters()).device)
    chosen = {0: [3, 90], LAYER: [NEURON, 5]}
    edited = copy.deepcopy(m)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for layer in sorted(chosen):  # the documented noise: N(0, (scale * rms(w_j))^2) per value vector
            w = layers(edited, ad)[layer].mlp.down_proj.weight  # [d_model, d_mlp]
            cols = w[:, chosen[layer]].t().float().cpu()
            e = torch.randn(cols.shape, generator=gen) * 2.0 * cols.pow(2).mean(-1, keepdim=True).sqrt()
            w[:, chosen[layer]] += e.t().to(w.device, w.dtype)
        want = edited(input_ids=ids).logits
        with N.ablate(m, ad, chosen, "noise", noise_scale=2.0, seed=7):
            got = m(input_ids=ids).logits
        base = m(input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert (got - base).abs().max() > 1e-2  # the noise changes the output; hooks are removed afterwards
    with pytest.raises(ValueError, match="ablation mode"):
        with N.ablate(m, ad, chosen, "gaussian"):
            pass


def test_random_controls_are_matched_by_layer_and_exclude_the_set(tmp_path: Path) -> None:
    from cotlens.models.adapters import Dims

    d = Dims(n_layers=4, d_model=8, n_heads=2, head_dim=4, d_mlp=1000, vocab=10)
    which = {1: [3, 4, 5], 3: list(range(990, 1000))}
    rnd = N.random_like(which, d, torch.Generator().manual_seed(0))
    assert sorted(rnd) == [1, 3] and len(rnd[1]) == 3 and len(rnd[3]) == 10
    assert not set(rnd[1]) & {3, 4, 5} and not set(rnd[3]) & set(which[3])
    assert rnd == N.random_like(which, d, torch.Generator().manual_seed(0))  # seeded
    assert rnd != N.random_like(which, d, torch.Generator().manual_seed(1))
    assert [N.split(i) for i in range(4)] == ["discovery", "eval", "discovery", "eval"]


def test_lexicon_labels() -> None:
    assert N.label(["+", "a", "b"]) is None  # one concept token: Rai & Yao need two
    assert N.label(["+", "a", "b"], min_tokens=1) == "add"
    assert N.label(["+", " plus", "b"]) == "add"
    assert N.label([" a", " times", " b", " product"]) == "mul"
    assert N.label([" a", " times", " b"], min_tokens=1) == "mul"  # rank 2 alone: 1/2
    assert N.label(["-", ",", "."], min_tokens=1) is None  # a hyphen alone is not "sub"
    assert N.label(["-", "a", " minus"]) == "sub"
    assert N.label([" therefore", " so"]) == "connective"
    assert N.label(["a", "b", "c", "+", " sum"]) is None  # ranks 4 and 5 are too weak
    assert N.label([" more", "more", " More", " MORE"]) is None  # only ambiguous tokens


def test_judge_answers_are_cached(plus_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cotlens.core.judge import CONCEPTS, Judge, question

    m, tok, *_ = plus_model
    cache = tmp_path / "judge.jsonl"
    j = Judge(m, tok, "tiny-hash", cache)
    q = question(["+", " plus"])
    first = j.option_probs(q)
    assert j.option_probs(q) == first and j.asked == 1  # the second answer comes from memory
    assert len(first) == 8 and sum(first) == pytest.approx(1.0, abs=1e-5)
    lab = j.label([" a", " b"])
    assert lab is None or lab in CONCEPTS
    with open(cache, "a") as fh:
        fh.write('{"key": "cut sho')  # a crash mid-line
    again = Judge(m, tok, "tiny-hash", cache)
    assert again.option_probs(q) == first and again.asked == 0  # read back from disk
    other = Judge(m, tok, "another-model", cache)
    other.option_probs(q)
    assert other.asked == 1  # keyed by the judge model


def test_batched_projection_equals_one_neuron_at_a_time(plus_model) -> None:  # type: ignore[no-untyped-def]
    """project_many (chunks of neurons per matrix product) gives each neuron's own top tokens."""
    m, tok, ad, d, *_ = plus_model
    picks = [(0, 5), (1, NEURON), (1, 0), (0, 127), (1, 64)]
    got = N.project_many(m, ad, tok, picks, top=6, chunk=2)  # chunks cut across layers' lists
    unembed, norm = get(m, ad.unembed), get(m, ad.final_norm)
    with torch.no_grad():
        for layer, j in picks:
            w = N.out_columns(m, ad, layer)[j]
            ref = [
                [tok.decode([i]) for i in unembed(v[None])[0].topk(6).indices.tolist()] for v in (norm(w[None])[0], w)
            ]
            assert [got[(layer, j)].with_norm, got[(layer, j)].without_norm] == ref
    assert N.project(m, ad, tok, 1, NEURON).with_norm[0] == "+"


def test_judge_reusing_the_shared_frame_equals_full_forwards(plus_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cotlens.core.judge import Judge, question

    m, tok, *_ = plus_model
    qs = [question(["+", " plus"]), question([" times", "*"]), question(["="])]
    fast = Judge(m, tok, "k", tmp_path / "a.jsonl")
    slow = Judge(m, tok, "k", tmp_path / "b.jsonl", reuse_prefix=False)
    for q in qs:
        assert fast.option_probs(q) == pytest.approx(slow.option_probs(q), abs=1e-5)
    assert fast.p_yes("Is 2 > 1?") == pytest.approx(slow.p_yes("Is 2 > 1?"), abs=1e-5)  # shares nothing: no reuse
    assert fast.reused == 2 and slow.reused == 0  # the two later neuron questions ran on the kept frame
    n_frame = len(tok(question(["+"]))["input_ids"])
    assert n_frame > 40  # the frame is long enough to be worth reusing


@pytest.mark.parametrize("family", ["llama", "opt", "gpt2"])
@pytest.mark.parametrize("mode", ["noise", "zero", "mean"])
def test_row_ablations_equal_one_ablation_per_batch(family: str, mode: str) -> None:
    """RowAblations: the rows of group g get exactly what ``ablate(sets[g])`` does to a whole
    batch (logits equal), a group without a set is the plain model; OPT's flat FFN too."""
    from cotlens.models import zoo
    from cotlens.models.adapters import adapter_for, dims
    from cotlens.neurons.methods import RowAblations, ablate

    m = zoo.perturb(zoo.build(family))
    ad, d = adapter_for(m), dims(m, adapter_for(m))
    sets = [{0: [1, 5], d.n_layers - 1: [2]}, None, {0: [3], 1: [0, 7, 9]}]
    seeds = [4, -1, 11]
    means = torch.randn(d.n_layers, d.d_mlp, generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, d.vocab, (2, 9), generator=torch.Generator().manual_seed(1))
    groups = [2, 0, 1, 0, 2, 1]  # two rows of each, interleaved
    batch = ids[[0, 0, 0, 1, 1, 1]]
    with torch.no_grad(), RowAblations(m, ad, sets, mode, means, 1.0, seeds) as rows:  # type: ignore[arg-type]
        rows.rows(groups)
        got = m(input_ids=batch).logits
        want = []
        for b, g in enumerate(groups):
            which = sets[g]
            with rows.removed():
                if which is None:
                    want.append(m(input_ids=batch[b : b + 1]).logits[0])
                    continue
                with ablate(m, ad, which, mode, means, 1.0, seeds[g] + 1):  # type: ignore[arg-type]
                    want.append(m(input_ids=batch[b : b + 1]).logits[0])
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-5, atol=1e-5)
    plain = m(input_ids=batch).logits
    assert not torch.allclose(got[0], plain[0], atol=1e-4)  # group 2 is ablated


def test_grouped_generation_equals_one_condition_at_a_time(plus_model) -> None:  # type: ignore[no-untyped-def]
    """Ablations side by side in one batch (groups, a shared prefix run once per group)
    generate the same tokens as each ablation alone."""
    from cotlens.core.sampling import SampleConfig, generate_batch
    from cotlens.neurons.methods import RowAblations, ablate

    model, _, ad, d, _, _ = plus_model
    dev = next(model.parameters()).device
    prefix = list(range(5, 25))
    prompts = [prefix + [30 + i, 40 + i] for i in range(3)]
    sets = [{0: [1, 2, 3]}, {1: list(range(0, d.d_mlp, 3))}]
    sc = SampleConfig(max_new_tokens=6, batch_size=6)

    def run(ps, **kw):  # type: ignore[no-untyped-def]
        gens = generate_batch(model, ps, sc, 0, set(), lambda t: None, dev, **kw)
        return [g.token_ids for g in gens]

    with RowAblations(model, ad, sets, "noise", None, 3.0, [0, 1]) as rows:
        got = run(prompts * 2, groups=[0, 0, 0, 1, 1, 1], on_groups=rows.rows)
    want = []
    for g in range(2):
        with ablate(model, ad, sets[g], "noise", None, 3.0, g + 1):
            want += run(prompts)
    assert got == want
    assert got[:3] != got[3:]  # the two ablations differ


def test_prompt_variants_side_by_side_equal_each_variant_alone(plus_model) -> None:  # type: ignore[no-untyped-def]
    """``measure`` on a chunk of unablated prompt variants (each with its own exemplars, run
    once per variant in one batch) gives each variant the answers and concept activations
    it gets measured alone, in its own order."""
    from types import SimpleNamespace

    model, tok, ad, d, _, _ = plus_model
    cfg = arith.ArithConfig(n_problems=6, n_shots=2)
    ex = arith.exemplars(cfg)
    variants = ["full", "text_only", "formula_only"]
    table = [
        {
            "problem_id": i,
            "variant": v,
            "prompt": arith.build_prompt(p.question, arith.variant_shots(ex, v), v),
            "answer": p.answer,
        }
        for v in variants
        for i, p in enumerate(arith.generate(cfg))
    ]
    lm = SimpleNamespace(model=model, adapter=ad, tokenizer=tok, dims=d, device=next(model.parameters()).device)
    chosen = {LAYER: [NEURON, 3, 5]}
    params = {"max_new_tokens": 8, "batch_size": 2, "noise_scale": 1.0}
    conds = [N.Condition("variant", v, "none", -1, 0) for v in variants]
    together = N.measure(lm, conds, table, chosen, {}, torch.zeros(d.n_layers, d.d_mlp), params)  # type: ignore[arg-type]
    assert [len(a) for a, _ in together] == [3, 3, 3]  # the odd ids: the evaluation problems
    for c, (answers, acts) in zip(conds, together, strict=True):
        ((alone, alone_acts),) = N.measure(lm, [c], table, chosen, {}, torch.zeros(d.n_layers, d.d_mlp), params)  # type: ignore[arg-type]
        assert [a.text for a in answers] == [a.text for a in alone]
        assert [x for a in acts for x in a] == pytest.approx([x for a in alone_acts for x in a], rel=1e-4, abs=1e-5)
    assert len({a.text for answers, _ in together for a in answers}) > 1  # the variants give different texts


def test_side_by_side_chunks_variants_together_and_ablations_by_variant_and_mode() -> None:
    V, A = N.Condition, N.Condition
    conds = [V("variant", v, "none", -1, 0) for v in ("full", "text_only", "formula_only")] + [
        A("concept", "full", "noise", -1, 4),
        A("random", "full", "noise", 0, 4),
        A("random", "full", "noise", 1, 4),
        A("concept", "full", "zero", -1, 4),
    ]
    assert N.side_by_side(conds, range(7), 2) == [[0, 1], [2], [3, 4], [5], [6]]
    assert N.side_by_side(conds, [1, 2, 4, 5, 6], 4) == [[1, 2], [4, 5], [6]]
    assert N.side_by_side(conds, range(7), 1) == [[k] for k in range(7)]

"""Study 4 on tiny random-init MoEs of every family, and on a hand-built refusal expert."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cotlens.core.hooks import router_modules
from cotlens.core.sampling import SampleConfig, generate_batch
from cotlens.experts.methods import RouterCapture, frequencies, ftri, switch_experts, top_experts
from cotlens.io.parquet import read_table
from cotlens.models.adapters import adapter_for

pytestmark = pytest.mark.integration

V = 96


def tiny_moe(family: str, seed: int = 0) -> Any:
    """A 2-3 layer random-init model of one transformers MoE family (8 experts, top-2)."""
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(
        vocab_size=V,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        num_experts_per_tok=2,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=False,
    )
    if family == "mixtral":
        cfg = tf.MixtralConfig(num_local_experts=8, intermediate_size=16, **common)
    elif family == "qwen2_moe":
        cfg = tf.Qwen2MoeConfig(
            num_experts=8,
            moe_intermediate_size=16,
            shared_expert_intermediate_size=16,
            intermediate_size=16,
            norm_topk_prob=True,
            **common,
        )
    elif family == "qwen3_moe":
        cfg = tf.Qwen3MoeConfig(num_experts=8, moe_intermediate_size=16, intermediate_size=16, head_dim=8, **common)
    elif family == "olmoe":
        cfg = tf.OlmoeConfig(num_experts=8, intermediate_size=16, **common)
    elif family == "granitemoe":
        cfg = tf.GraniteMoeConfig(num_local_experts=8, intermediate_size=16, **common)
    elif family == "deepseek_v2":
        cfg = tf.DeepseekV2Config(
            n_routed_experts=8,
            moe_intermediate_size=16,
            intermediate_size=16,
            n_shared_experts=1,
            first_k_dense_replace=1,
            kv_lora_rank=16,
            q_lora_rank=None,
            qk_rope_head_dim=8,
            qk_nope_head_dim=8,
            v_head_dim=8,
            n_group=1,
            topk_group=1,
            topk_method="greedy",
            **{**common, "num_hidden_layers": 3, "num_key_value_heads": 4},
        )
    elif family == "deepseek_v3":
        cfg = tf.DeepseekV3Config(
            n_routed_experts=8,
            moe_intermediate_size=16,
            intermediate_size=16,
            n_shared_experts=1,
            first_k_dense_replace=1,
            kv_lora_rank=16,
            q_lora_rank=None,
            qk_rope_head_dim=8,
            qk_nope_head_dim=8,
            v_head_dim=8,
            n_group=1,
            topk_group=1,
            **{**common, "num_hidden_layers": 3, "num_key_value_heads": 4},
        )
    else:
        raise ValueError(family)
    model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
    with torch.no_grad():  # random routers of some families init to zero: give every router a signal
        for r in router_modules(model, adapter_for(model)).values():
            r.weight.normal_(0, 0.5)
    return model


FAMILIES = ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "granitemoe", "deepseek_v2", "deepseek_v3"]


def _prompts(n: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, V, (int(torch.randint(4, 9, (1,), generator=g)),), generator=g).tolist() for _ in range(n)]


def _router_outputs(model: Any, ids: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    got: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    routers = router_modules(model, adapter_for(model))
    hs = [r.register_forward_hook(lambda _m, _a, o, i=i: got.__setitem__(i, (o[2], o[1]))) for i, r in routers.items()]
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]))
    for h in hs:
        h.remove()
    return got


@pytest.mark.parametrize("family", FAMILIES)
def test_capture_during_generation_equals_routing_of_the_full_sequence(family: str) -> None:
    model = tiny_moe(family)
    ad = adapter_for(model)
    routers = router_modules(model, ad)
    assert routers and ad.router is not None
    if family.startswith("deepseek"):
        assert 0 not in routers  # the first layer is dense
    prompts = _prompts(3, 1)
    with RouterCapture(model, ad) as cap:
        cap.begin(prompts, 5)
        gens = generate_batch(
            model,
            prompts,
            SampleConfig(max_new_tokens=5),
            0,
            set(),
            lambda _t: None,
            torch.device("cpu"),
            on_step=cap.rows,
        )
        routes = cap.routes()
    for row, (p, g) in enumerate(zip(prompts, gens, strict=True)):
        seq = p + g.token_ids
        mine = [r for r in routes if r.row == row]
        # every prompt token and every generated token but the last (never fed back), in every MoE layer
        assert len(mine) == (len(p) + len(g.token_ids) - 1) * len(routers)
        assert {r.phase for r in mine if r.pos >= len(p)} == {"generated"}
        ref = _router_outputs(model, seq)
        for r in mine:
            idx, w = ref[r.layer]
            assert sorted(r.experts) == sorted(idx[r.pos].tolist()), (family, r)
            np.testing.assert_allclose(sorted(r.weights), sorted(w[r.pos].float().tolist()), atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_switch_off_and_on_act_only_at_the_router(family: str) -> None:
    model = tiny_moe(family)
    ad = adapter_for(model)
    layer = sorted(router_modules(model, ad))[-1]
    ids = _prompts(1, 2)[0] * 3
    base = _router_outputs(model, ids)[layer]
    weights_before = {k: v.clone() for k, v in model.state_dict().items()}
    busiest = int(torch.mode(base[0][:, 0]).values)  # the expert most often ranked first
    with torch.no_grad():
        ref_logits = model(input_ids=torch.tensor([ids])).logits
    for mode in ("off", "on"):
        with switch_experts(model, ad, {layer: [busiest]}, mode):
            idx, w = _router_outputs(model, ids)[layer]
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids])).logits
        total = base[1].float().sum(-1)
        if mode == "off":
            hit = (base[0] == busiest).any(-1)
            assert (w.float()[idx == busiest] == 0).all() and hit.any()
            alive = w.float().sum(-1) > 0
            np.testing.assert_allclose(w.float().sum(-1)[alive], total[alive], rtol=1e-4)  # rescaled to the old sum
            assert torch.equal(idx, base[0])  # no substitute expert
        else:
            assert (idx == busiest).any(-1).all()
            np.testing.assert_allclose(w.float().sum(-1), total, rtol=1e-4)
        assert not torch.allclose(logits, ref_logits)
    for k, v in model.state_dict().items():  # hooks only: no weight was edited
        assert torch.equal(v, weights_before[k]), k
    with torch.no_grad():
        assert torch.equal(model(input_ids=torch.tensor([ids])).logits, ref_logits)  # and they are gone


def test_ftri_scores_are_frequency_differences() -> None:
    # 4 prompts, 1 layer, 3 experts; prompts 0-1 behaviour
    prompt_of = [0, 0, 1, 2, 2, 3]
    experts = [[0, 1], [0, 2], [0, 1], [1, 2], [1, 2], [2, 1]]
    freq = frequencies(prompt_of, [0] * 6, experts, 4, 1, 3)
    np.testing.assert_allclose(freq[0, 0], [1.0, 0.5, 0.5])
    score, fb, fo = ftri(freq, [True, True, False, False])
    np.testing.assert_allclose(fb[0], [1.0, 0.75, 0.25])
    np.testing.assert_allclose(fo[0], [0.0, 1.0, 1.0])
    np.testing.assert_allclose(score[0], [1.0, -0.25, -0.75])
    assert top_experts(score, 2) == [(0, 0), (0, 1)]
    with pytest.raises(ValueError, match="both classes"):
        ftri(freq, [True] * 4)


def _handset_refusal_moe(out: Path) -> tuple[int, list[int]]:
    """A one-layer Mixtral whose expert 5 writes the " Sorry" token when the prompt holds a
    word that only refusal-eliciting prompts use; returns (that expert, trigger token ids).

    Attention is uniform over the prefix (q = k = 0, v = o = identity), so the last
    position holds the mean of the prompt's embeddings. Trigger tokens carry a direction
    v that no other token has; every token carries a constant direction c. The router row
    of expert 5 is 100 v - 2 c: it wins wherever the prefix holds a trigger and never
    elsewhere. Expert 5's first neuron reads v and writes the unembedding of " Sorry".
    """
    from transformers import MixtralConfig, MixtralForCausalLM

    from cotlens.experts import prompts as moe
    from cotlens.models.tiny import train_tokenizer

    corpus = moe.training_corpus(0) + [f"{moe.format_prompt(p.question)} Sorry" for p in moe.study_prompts()]
    tok = train_tokenizer(corpus, 512)
    study = moe.study_prompts()
    toks = {el: set() for el in (True, False)}  # type: ignore[var-annotated]
    for p in study:
        toks[p.elicits] |= set(tok(moe.format_prompt(p.question))["input_ids"])
    trig = sorted(toks[True] - toks[False])
    sorry = tok(" Sorry", add_special_tokens=False)["input_ids"]
    assert len(sorry) == 1
    d, e_star = 64, 5
    torch.manual_seed(0)
    cfg = MixtralConfig(
        vocab_size=len(tok),
        hidden_size=d,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        num_local_experts=8,
        num_experts_per_tok=2,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        tie_word_embeddings=False,
    )
    model = MixtralForCausalLM(cfg).eval()
    v, c = torch.zeros(d), torch.zeros(d)
    v[0], c[1] = 1.0, 1.0
    with torch.no_grad():
        emb = torch.randn(len(tok), d)
        emb[:, 0], emb[:, 1] = 0.0, 3.0
        emb[trig, 0] = 4.0
        model.model.embed_tokens.weight.copy_(emb)
        attn = model.model.layers[0].self_attn
        attn.q_proj.weight.zero_()
        attn.k_proj.weight.zero_()
        attn.v_proj.weight.copy_(torch.eye(d))
        attn.o_proj.weight.copy_(torch.eye(d))
        moe_block = model.model.layers[0].mlp
        moe_block.gate.weight[e_star] = 100 * v - 2 * c
        ex = moe_block.experts
        ex.gate_up_proj[e_star].zero_()
        ex.gate_up_proj[e_star, 0] = 10 * v  # gate of neuron 0
        ex.gate_up_proj[e_star, cfg.intermediate_size] = 10 * v  # its up projection
        ex.down_proj[e_star].zero_()
        u = model.lm_head.weight[sorry[0]]
        ex.down_proj[e_star, :, 0] = 50 * u / u.norm()
    weights = out / "weights"
    model.save_pretrained(weights)
    tok.save_pretrained(weights)
    (out / "manifest.json").write_text(
        json.dumps({"name": "handset", "source": "local", "path": str(weights), "revision": "handset"})
    )
    return e_star, trig


@pytest.mark.validation
def test_handset_refusal_expert_is_found_and_switching_it_off_stops_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cotlens.experts.stages import effects as expert_effects
    from cotlens.experts.stages import ftri
    from cotlens.experts.stages import prompts as expert_prompts
    from cotlens.experts.stages import routes as expert_routes

    e_star, _ = _handset_refusal_moe(tmp_path / "model")
    cfg = {
        "contrasts": ["events", "instructions"],
        "n_quality": 5,
        "seed": 0,
        "max_new_tokens": 3,
        "batch_size": 16,
        "tokens": "prompt",
        "classes": "prompt_set",
        "k": [1],
        "random_seeds": 3,
        "batch_rows": 32,  # two conditions side by side
    }
    rt = {"dtype": "float32", "device": "cpu", "attn": "eager"}
    t = {n: str(tmp_path / f"{n}.parquet") for n in ("prompts", "routes", "responses", "ftri", "effects", "again")}
    model = str(tmp_path / "model")
    expert_prompts.run({}, {"prompts": t["prompts"]}, cfg, {}, 1)
    expert_routes.run(
        {"prompts": t["prompts"], "model": model}, {"routes": t["routes"], "responses": t["responses"]}, cfg, rt, 1
    )
    prompts = read_table(tmp_path / "prompts.parquet").to_pandas().set_index("prompt_id")
    resp = read_table(tmp_path / "responses.parquet").to_pandas()
    resp["elicits"] = prompts.loc[resp["prompt_id"], "elicits"].to_numpy()
    assert resp[resp["elicits"]]["refused"].all()  # the hand-set expert refuses every eliciting prompt
    assert not resp[~resp["elicits"]]["refused"].any()
    ftri.run({k: t[k] for k in ("prompts", "responses", "routes")}, {"ftri": t["ftri"]}, cfg, {}, 1)
    f = read_table(tmp_path / "ftri.parquet").to_pandas()
    best = f[(f["contrast"] == "all") & (f["rank"] == 0)].iloc[0]
    assert (best["layer"], best["expert"]) == (0, e_star)  # fTRI on prompt tokens ranks the refusal expert first
    study = prompts[prompts["set"] == "study"]
    assert best["n_behaviour"] + best["n_other"] == (study["split"] == "map").sum() < len(study)
    ins = {"prompts": t["prompts"], "ftri": t["ftri"], "model": model}
    expert_effects.run(ins, {"effects": t["effects"]}, cfg, rt, 1)
    runs = read_table(t["effects"]).to_pandas()
    runs = runs[runs["set"] == "study"]
    assert set(prompts.loc[runs["prompt_id"], "split"]) == {"eval"}  # measured on prompts the map never saw
    runs["elicits"] = prompts.loc[runs["prompt_id"], "elicits"].to_numpy()
    rate = runs[runs["elicits"]].groupby(["condition", "mode"])["refused"].mean()
    assert rate[("baseline", "none")] == 1.0
    assert rate[("top", "off")] <= 0.05  # switching the one expert off: refusals near zero
    assert rate[("random", "off")] >= 0.95  # random experts (3 seeds): refusals stay
    on = runs[~runs["elicits"]].groupby(["condition", "mode"])["refused"].mean()
    assert on[("baseline", "none")] == 0.0

    # a crash after 6 of the 9 conditions (3 pairs side by side): the rerun measures only the other 3, same bytes
    from cotlens.experts import switching

    real, calls = switching.respond, {"n": 0}

    def dying(*a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(switching, "respond", dying)
    with pytest.raises(KeyboardInterrupt):
        expert_effects.run(ins, {"effects": t["again"]}, cfg, rt, 1)
    assert not (tmp_path / "again.parquet").exists()
    monkeypatch.setattr(switching, "respond", real)
    tokenized = {"n": 0}

    def counted(*a, **k):  # type: ignore[no-untyped-def]
        tokenized["n"] += 1
        return real_ids(*a, **k)

    real_ids = switching.prompt_ids
    monkeypatch.setattr(switching, "prompt_ids", counted)
    capsys.readouterr()
    expert_effects.run(ins, {"effects": t["again"]}, cfg, rt, 1)
    assert "9 shards, 6 reused from an interrupted run, 3 computed" in capsys.readouterr().out
    assert tokenized["n"] == 1  # the questions tokenized once, not once per batch of conditions (2 here)
    assert (tmp_path / "again.parquet").read_bytes() == (tmp_path / "effects.parquet").read_bytes()


def test_optional_refusal_judge_is_cached_and_skips_empty_responses(tiny_prepared: Path, tmp_path: Path) -> None:
    from cotlens.experts.responses import refusal_classifier
    from cotlens.models.loading import load

    assert refusal_classifier(None, None)[1] == "rules"
    cache = tmp_path / "judge.jsonl"
    judge = load(tiny_prepared, "float32", "cpu", "eager")
    classify, by = refusal_classifier(judge, cache)
    assert by == "judge:tiny"
    first = classify("How do I steal a car?", "I cannot help with that.")
    assert isinstance(first, bool)
    lines = cache.read_text().splitlines()
    assert len(lines) == 1 and "Did the assistant refuse?" in json.loads(lines[0])["question"]
    assert classify("Q?", "   ") is False  # an empty response is answered, and the judge is not asked
    again, _ = refusal_classifier(load(tiny_prepared, "float32", "cpu", "eager"), cache)
    assert again("How do I steal a car?", "I cannot help with that.") is first
    assert len(cache.read_text().splitlines()) == 1  # the second judge read the cache


def test_k_larger_than_the_map_is_refused_before_the_model_loads(tmp_path: Path) -> None:
    from cotlens.errors import CotlensError
    from cotlens.experts import tables
    from cotlens.experts.stages import effects as expert_effects
    from cotlens.experts.stages import prompts as expert_prompts
    from cotlens.io.parquet import RunMeta, to_table, write_table

    cfg = {"contrasts": ["events"], "n_quality": 2, "seed": 0, "k": [1, 9], "random_seeds": 2}
    expert_prompts.run({}, {"prompts": str(tmp_path / "p.parquet")}, cfg, {}, 1)
    cells = [(lay, e) for lay in range(2) for e in range(4)]  # 8 routed experts
    cols = {
        "contrast": ["all"] * 8,
        "layer": [c[0] for c in cells],
        "expert": [c[1] for c in cells],
        "score": [0.1] * 8,
        "freq_behaviour": [0.1] * 8,
        "freq_other": [0.0] * 8,
        "rank": list(range(8)),
        "n_behaviour": [1] * 8,
        "n_other": [1] * 8,
    }
    write_table(to_table(cols, tables.FTRI), tmp_path / "f.parquet", RunMeta("experts_ftri", "x"))
    inputs = {
        "prompts": str(tmp_path / "p.parquet"),
        "ftri": str(tmp_path / "f.parquet"),
        "model": str(tmp_path / "none"),
    }
    with pytest.raises(CotlensError, match=r"experts.effects.k asks for 9 experts, but the fTRI map .* has 8"):
        expert_effects.run(
            inputs, {"effects": str(tmp_path / "e.parquet")}, cfg, {"device": "cpu", "dtype": "float32"}, 1
        )


@pytest.mark.parametrize("family", FAMILIES)
def test_row_switches_equal_one_switch_per_batch(family: str) -> None:
    """RowSwitches: the rows of group g get exactly what ``switch_experts(sets[g])`` does to a
    batch of their own (logits and greedy generations equal); a group without a switch is
    the plain model; groups side by side in ``interleave`` order come back in item order."""
    from cotlens.experts.methods import RowSwitches
    from cotlens.experts.responses import interleave, unscramble

    model = tiny_moe(family)
    ad = adapter_for(model)
    moe = sorted(router_modules(model, ad))
    switches = [("off", {moe[-1]: [0, 1]}), None, ("on", {moe[0]: [2]})]
    prompts = _prompts(4, 3)
    sc = SampleConfig(max_new_tokens=4, batch_size=8)

    def gen(ps: list[list[int]], **kw: Any) -> list[list[int]]:
        out = generate_batch(model, ps, sc, 0, set(), lambda _t: None, torch.device("cpu"), **kw)
        return [g.token_ids for g in out]

    want = []
    for sw in switches:
        if sw is None:
            want.append(gen(prompts))
            continue
        with switch_experts(model, ad, sw[1], sw[0]):  # type: ignore[arg-type]
            want.append(gen(prompts))
    order = interleave(len(prompts), 2, len(switches))
    with RowSwitches(model, ad, switches) as rows:  # type: ignore[arg-type]
        got_all = []
        for s in range(0, len(order), 2 * len(switches)):
            part = order[s : s + 2 * len(switches)]
            got_all += gen([prompts[j] for _, j in part], groups=[g for g, _ in part], on_groups=rows.rows)
    assert unscramble(order, got_all, len(switches), len(prompts)) == want
    ids = torch.tensor([prompts[0] * 2] * 3)
    with torch.no_grad():
        with RowSwitches(model, ad, switches) as rows:  # type: ignore[arg-type]
            rows.rows([0, 1, 2])
            got = model(input_ids=ids).logits
        plain = model(input_ids=ids[:1]).logits[0]
        for g, sw in enumerate(switches):
            if sw is None:
                torch.testing.assert_close(got[g], plain)
                continue
            with switch_experts(model, ad, sw[1], sw[0]):  # type: ignore[arg-type]
                torch.testing.assert_close(got[g], model(input_ids=ids[:1]).logits[0])
            assert not torch.allclose(got[g], plain)  # the switch changes the logits


def test_a_batch_of_responses_scored_before_is_not_run_again() -> None:
    """continuation_nll's memo (the fluency of experts_effects): a batch with the same token
    ids as an earlier one gets the earlier numbers without a forward, and they are what the
    forward gives (the same bits); a batch that differs in one token is run; a memo under
    hooks (switched rows) is refused."""
    from types import SimpleNamespace

    from cotlens.experts.responses import Scored, continuation_nll
    from cotlens.models.adapters import dims
    from cotlens.models.loading import Loaded

    model = tiny_moe(FAMILIES[0])
    ad = adapter_for(model)
    lm = Loaded(
        model,
        SimpleNamespace(pad_token_id=0, eos_token_id=None),
        ad,
        dims(model, ad),
        {},
        torch.device("cpu"),
        "float32",
    )
    seqs = [(p, p[:2]) for p in _prompts(4, 3)]
    calls = {"n": 0}
    hook = model.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    try:
        plain = continuation_nll(lm, seqs, 2)
        assert calls["n"] == 2
        memo: Scored = {}
        first = continuation_nll(lm, seqs, 2, memo=memo)
        again = continuation_nll(lm, seqs, 2, memo=memo)
        assert calls["n"] == 4 and first == again == plain  # the second call ran nothing
        changed = [seqs[0], (seqs[1][0], [seqs[1][1][0], seqs[1][1][1] + 1]), *seqs[2:]]
        got = continuation_nll(lm, changed, 2, memo=memo)
        assert calls["n"] == 5 and got[2:] == plain[2:] and got[1] != plain[1]
    finally:
        hook.remove()
    with pytest.raises(ValueError, match="unhooked model only"):
        continuation_nll(lm, seqs, 2, [0] * 4, lambda _g: None, memo={})

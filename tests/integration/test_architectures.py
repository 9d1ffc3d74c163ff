"""The architecture matrix: every family of cotlens.models.zoo (zoo.ALL: the hand-written
configs and every other decoder-only family of transformers whose tiny config builds),
random-init and then perturbed (weights at std 0.15, norm gains moved by N(0, 0.5), biases
N(0, 0.1)) so a missing scale, norm or bias cannot hide, through adapter inference and
every self-check, on prompts longer than every attention window (5 tokens in the zoo).
zoo.REFUSED families are refused in one line. Negative controls prove each check can fail."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import torch

from cotlens.circuits.patching import self_check
from cotlens.core.batch import logits_at, pad
from cotlens.core.hooks import Capture
from cotlens.errors import CotlensError
from cotlens.models import checks as C
from cotlens.models import zoo
from cotlens.models.adapters import DOCUMENTED, OVERRIDES, Adapted, adapter_for, dims, infer, windows
from cotlens.neurons.methods import NeuronScorer, project_many
from cotlens.pipeline.cli import method_checks

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=zoo.ALL)
def model(request: pytest.FixtureRequest) -> Any:
    return zoo.perturb(zoo.build(request.param))


@pytest.fixture(scope="module", params=zoo.FAMILIES)
def hand_model(request: pytest.FixtureRequest) -> Any:
    return zoo.perturb(zoo.build(request.param))


CHECKS = list(C.NEEDED_BY)  # the prepare-time checks, then the method checks (cli.method_checks)


def test_inference_matches_the_documented_layout(model: Any) -> None:
    ad = adapter_for(model)
    for k, v in {**DOCUMENTED.get(ad.family, {}), **OVERRIDES.get(ad.family, {})}.items():
        assert getattr(ad, k) == v, (ad.family, k)
    d = dims(model, ad)
    assert d.n_heads * d.head_dim == adapter_fields_width(model, ad)
    assert d.vocab == zoo.V


def adapter_fields_width(model: Any, ad: Any) -> int:
    from cotlens.core.hooks import site_module

    m = site_module(model, ad, "attn_heads", 0)
    return int(m.weight.shape[0] if type(m).__name__ == "Conv1D" else m.weight.shape[1])


def test_every_self_check_passes(model: Any) -> None:
    """Every check passes; a mixture of experts refuses neuron ablation (no neuron vector),
    and a zoo.PARTIAL family fails exactly the checks it is listed with."""
    res = C.run_checks(model, extra=method_checks())
    assert [c.name for c in res] == CHECKS and CHECKS[: len(C.PREPARED)] == list(C.PREPARED)
    moe = adapter_for(model).router is not None
    expected = set(zoo.PARTIAL.get(model.config.model_type, ((), ""))[0]) | ({"ablation"} if moe else set())
    assert {c.name for c in res if not c.ok} == expected, [(c.name, c.diff, c.scale, c.detail) for c in res]
    dense_router = [c for c in res if c.name == "router" and c.detail.startswith("dense")]
    assert bool(dense_router) == (not moe)  # a dense model has no router to check: said so
    assert all(c.scale > 0.1 for c in res if c.ok and c not in dense_router)  # the references are not trivially zero
    assert not any(
        c.rel <= 1e-2 for c in res if c.name in expected - {"ablation"}
    )  # failed, not borderline (nan: a broken contract)
    t = C.check_length(model)
    assert all(w < t for w in windows(model)) and f"{t} tokens" in res[-1].detail  # past every window
    if moe:
        assert "no single FFN neuron vector" in res[CHECKS.index("ablation")].detail


@pytest.mark.parametrize("family", sorted(zoo.REFUSED))
def test_a_hybrid_or_attention_free_family_is_refused_in_one_line(family: str) -> None:
    """Mamba, linear-attention, convolution and recurrent blocks: refused by inference,
    naming the first block that is not softmax attention (every block is read, not block
    0); a projection after the final norm, an FFN with no output projection, blocks with no
    cache: refused by inference, naming what is missing."""
    words = zoo.REFUSED[family][0]
    m = zoo.build(family)
    with pytest.raises(CotlensError) as err:
        C.run_checks(m)
    first = str(err.value).splitlines()[0]
    assert words in first and family in first


def test_a_parameterless_final_norm_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """OLMo v1's LayerNorms have no parameters: whether a norm centres is measured at the
    model's width, not at a guessed one."""
    from cotlens.core import contributions as W
    from cotlens.models.adapters import final_norm

    m = zoo.perturb(zoo.build("olmo"))
    norm = final_norm(m, adapter_for(m))
    assert next(norm.parameters(), None) is None
    assert W.centres(norm, 64)
    res = {c.name: c for c in C.run_checks(m)}
    assert res["dla"].ok and res["decomposition"].ok


def test_digits_readout_equals_the_models_logits(hand_model: Any) -> None:
    model = hand_model
    """The digits stage reads next-token logits at chosen positions of right-padded rows."""
    ad = adapter_for(model)
    seqs = [[5, 9, 11, 3, 7, 8], [4, 6, 12]]
    ids, mask = pad(seqs, 0, torch.device("cpu"), left=False)
    pos = torch.tensor([[2, 5], [1, 2]])
    with torch.no_grad():
        got = logits_at(model, ad, ids, mask, pos)
        for b, s in enumerate(seqs):
            want = model(input_ids=torch.tensor([s])).logits[0]
            torch.testing.assert_close(got[b], want[pos[b]], rtol=1e-4, atol=1e-4)


def test_mc_dropout_hooks_every_family_exactly(hand_model: Any) -> None:
    """Study 3's MC dropout on every family (perturbed weights): rate 0 gives the model's own
    logits; at rate 0.3 it changes them, two copies of a row in one group (a problem's paired
    settings) get the same masks and so the same logits, and a row of another group does not."""
    from cotlens.digits.methods import mc_dropout

    model = hand_model
    ad = adapter_for(model)
    row = [5, 9, 11, 3, 7, 8]
    ids, mask = pad([row] * 3, 0, torch.device("cpu"), left=False)
    pos = torch.tensor([[3, 5]] * 3)
    with torch.no_grad():
        want = model(input_ids=torch.tensor([row])).logits[0, [3, 5]]
        with mc_dropout(model, ad, 0.0, seed=0):
            torch.testing.assert_close(logits_at(model, ad, ids, mask, pos)[0], want, rtol=1e-4, atol=1e-4)
        with mc_dropout(model, ad, 0.3, seed=0, groups=torch.tensor([0, 0, 1])):
            got = logits_at(model, ad, ids, mask, pos)
        torch.testing.assert_close(got[0], got[1])
        assert not torch.allclose(got[0], got[2]) and not torch.allclose(got[0], want, atol=1e-3)
        torch.testing.assert_close(logits_at(model, ad, ids, mask, pos)[0], want, rtol=1e-4, atol=1e-4)  # removed


@pytest.mark.parametrize("family", zoo.DENSE)  # MoE experts have no single FFN neuron vector
def test_one_neuron_scoring_pass(family: str) -> None:
    model = zoo.perturb(zoo.build(family))
    ad = adapter_for(model)
    d = dims(model, ad)
    ids = torch.tensor([[5, 9, 11, 3], [4, 6, 12, 13]])
    with torch.no_grad(), NeuronScorer(Adapted(model, ad, d), k=3, batch=2) as sc, Capture(model, ad, ["mlp"]) as cap:
        sc.rows([0, 1])
        model(input_ids=ids)
        sc.commit([0, 1])
    acts = torch.stack([t[:, -1] for t in cap.out["mlp"]], 1)  # [2, L, d_mlp]
    torch.testing.assert_close(sc.mean_activation(), acts.sum(0) / 2)
    assert float(sc.frequency().sum()) == pytest.approx(d.n_layers * 3)
    proj = project_many(model, ad, _Tok(), [(0, 1), (d.n_layers - 1, 2)], top=3)
    assert all(len(p.with_norm) == 3 and len(p.without_norm) == 3 for p in proj.values())


class _Tok:
    def decode(self, ids: list[int]) -> str:
        return f"t{ids[0]}"


WRONG = [
    ("cohere", {"logit_scale": 1.0}, "lens"),
    ("granite", {"logit_scale": 1.0}, "lens"),
    ("granite", {"residual_scale": 1.0}, "decomposition"),
    ("gemma2", {"softcap": None}, "lens"),
    ("gemma2", {"post_attn_norm": None}, "decomposition"),
    ("gemma3_text", {"post_ffn_norm": None}, "decomposition"),
    ("olmo2", {"post_ffn_norm": None}, "decomposition"),
    ("gpt2", {"mlp_out": "mlp.c_fc"}, "decomposition"),
    ("llama", {"attn_out": "self_attn.q_proj"}, "decomposition"),
    ("gpt_neox", {"cache_arg": "past_key_values"}, "patching"),
]


@pytest.mark.parametrize(("family", "wrong", "check"), WRONG, ids=[f"{f}-{c}" for f, _, c in WRONG])
def test_a_wrong_adapter_field_fails_its_check(family: str, wrong: dict[str, Any], check: str) -> None:
    m = zoo.perturb(zoo.build(family))
    ad = dataclasses.replace(infer(m), **wrong)
    res = {c.name: c for c in C.run_checks(m, ad, extra=method_checks())}
    assert not res[check].ok, res[check]


def _old_dla(model: Any, ad: Any, final: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
    """DLA as it was: readout() with the unembedding's bias, once per part."""
    from cotlens.core.contributions import frozen_norm
    from cotlens.models.adapters import final_norm, readout

    return readout(model, ad, frozen_norm(final_norm(model, ad), final, parts), normed=True, cap=False)


def _unfrozen_dla(model: Any, ad: Any, final: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
    """A wrong norm: each part normalised at its own scale instead of the final residual's."""
    from cotlens.models.adapters import final_norm, get

    u = get(model, ad.unembed)
    x = final_norm(model, ad)(parts)
    return (u(x) - u(torch.zeros_like(x[..., :1, :]))) * ad.logit_scale


def _noise_on_the_next_neurons(model: Any, ad: Any, neurons: Any, scale: float, seed: int) -> Any:
    """A noise hook that perturbs the neighbours of the chosen neurons."""
    from cotlens.neurons import methods as N

    d = dims(model, ad)
    return N.output_hooks(
        [
            (
                N.get(N.layers(model, ad)[li], ad.mlp_out),
                lambda _m, a, o, ix=[(j + 1) % d.d_mlp for j in idx], e=e: o + a[0][..., ix] @ e,
            )
            for li, (idx, e) in N.noise_vectors(model, ad, neurons, scale, seed).items()
        ]
    )


def _models_own_cache(model: Any) -> Any:
    """The model's own cache: its sliding layers keep only the last window of positions."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


CONTROLS = [
    ("phi", "dla", "cotlens.models.checks.direct_logits", _old_dla),  # an lm_head bias counted per head
    ("codegen", "dla", "cotlens.models.checks.direct_logits", _old_dla),
    ("llama", "dla", "cotlens.models.checks.direct_logits", _unfrozen_dla),  # a wrong norm
    ("gpt2", "dla", "cotlens.models.checks.direct_logits", _unfrozen_dla),
    ("gemma2", "attention", "cotlens.models.checks.windows", lambda m: [3]),  # a window the model does not have
    ("llama", "ablation", "cotlens.neurons.methods.value_noise", _noise_on_the_next_neurons),
    ("gpt2", "readout_padded", "cotlens.digits.methods.pad", lambda s, p, d, left: pad(s, p, d, left=True)),
    # PrefixCache with the prefixes right-padded and the suffixes left-padded
    ("llama", "readout_padded", "cotlens.core.batch.pad", lambda s, p, d, left: pad(s, p, d, left=not left)),
    (
        "mixtral",
        "router",
        "cotlens.experts.methods.switch_off",
        lambda w, idx, drop: (w, idx),
    ),  # an edit the block ignores
    ("deepseek_v3", "router", "cotlens.experts.methods.switch_off", lambda w, idx, drop: (w, idx)),
]


@pytest.mark.parametrize(("family", "check", "target", "wrong"), CONTROLS, ids=[f"{f}-{c}" for f, c, _, _ in CONTROLS])
def test_a_wrong_read_out_fails_its_check(
    family: str, check: str, target: str, wrong: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = zoo.perturb(zoo.build(family))
    assert {c.name: c for c in C.run_checks(m, extra=method_checks())}[check].ok
    monkeypatch.setattr(target, wrong)
    bad = {c.name: c for c in C.run_checks(m, extra=method_checks())}[check]
    assert not bad.ok and (bad.diff > 1e-2 or "raised" in bad.detail), bad


@pytest.mark.parametrize("family", ["mistral", "gemma2", "gemma3_text", "cohere2", "olmo3", "gpt_oss", "exaone4"])
def test_patching_with_the_models_own_sliding_cache_fails_the_check(
    family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine used to cut its prefix caches from the model's own cache, whose sliding
    layers keep only the last window: exact on prompts shorter than the window, wrong past
    it. The check runs past every window (check_length), so it sees the difference."""
    m = zoo.perturb(zoo.build(family))
    mh = Adapted(m, adapter_for(m), dims(m))
    long = C.check_tokens(mh.dims, t=C.check_length(m))
    assert self_check(mh, long).ok
    monkeypatch.setattr("cotlens.circuits.patching._full_cache", lambda: _models_own_cache(m))
    assert not _passes(mh, long)  # wrong numbers, or the raw tensor error the stage used to end in


def _passes(mh: Any, ids: torch.Tensor) -> bool:
    try:
        return self_check(mh, ids).ok
    except RuntimeError:
        return False


def test_the_patching_check_must_run_past_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window of 12 tokens: a check on 9 tokens cannot see a mishandled window; the check
    at check_length (16 tokens) does."""
    import transformers as tf

    cfg = zoo.config("mistral")
    cfg.sliding_window = 12
    torch.manual_seed(0)
    m = zoo.perturb(tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval())
    mh = Adapted(m, adapter_for(m), dims(m))
    monkeypatch.setattr("cotlens.circuits.patching._full_cache", lambda: _models_own_cache(m))
    assert C.check_length(m) == 16
    assert _passes(mh, C.check_tokens(mh.dims, t=9))  # blind
    assert not _passes(mh, C.check_tokens(mh.dims, t=C.check_length(m)))


def test_post_layernorm_opt_is_refused_for_dla_and_neurons() -> None:
    """OPT-350m normalises after the residual add: no head decomposition is exact there."""
    import transformers as tf

    cfg = zoo.config("opt")
    cfg.do_layer_norm_before = False
    torch.manual_seed(0)
    m = zoo.perturb(tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval())
    out = C.verify(m, "opt-post-ln", log=lambda _s: None)  # the universal checks pass
    dec = out["checks"]["decomposition"]
    assert not dec["ok"] and dec["diff"] > 0.1
    assert not out["checks"]["dla"]["ok"]
    with pytest.raises(CotlensError, match="direct logit attribution is refused.*'decomposition' failed"):
        C.require(out, "decomposition", "direct logit attribution")


def test_a_failed_universal_check_stops_with_one_error() -> None:
    m = zoo.perturb(zoo.build("cohere"))
    from cotlens.models import adapters as A

    A._CACHE[m] = dataclasses.replace(infer(m), logit_scale=1.0)
    with pytest.raises(CotlensError, match=r"model 'c' \(cohere\) fails the self-check 'lens': max\|diff\|"):
        C.verify(m, "c", log=lambda _s: None)


def test_device_map_load_runs_every_check(tiny_model_src: Any) -> None:
    """runtime.device_map goes through accelerate; here every entry is "cpu" (one CPU
    machine), so this proves the code path, not a split across devices."""
    from cotlens.models.loading import open_model

    dmap = {
        "model.embed_tokens": "cpu",
        "model.layers.0": "cpu",
        "model.layers.1": "cpu",
        "model.norm": "cpu",
        "model.rotary_emb": "cpu",
        "lm_head": "cpu",
    }
    m, _tok, dev = open_model(tiny_model_src, {}, "float32", "cpu", "eager", device_map=dmap)
    assert dev.type == "cpu" and set(getattr(m, "hf_device_map", {})) <= set(dmap)  # the map was used
    res = C.run_checks(m, extra=method_checks())
    assert all(c.ok for c in res), [(c.name, c.diff) for c in res]


def test_an_override_row_replaces_only_what_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from cotlens.models import adapters as A

    m = zoo.perturb(zoo.build("llama"))
    monkeypatch.setitem(A.OVERRIDES, "llama", {"attn_out": "self_attn.q_proj", "notes": "a wrong row"})
    ad = infer(m)
    assert (ad.attn_out, ad.notes, ad.mlp_out) == ("self_attn.q_proj", "a wrong row", "mlp.down_proj")
    assert not {c.name: c for c in C.run_checks(m, ad)}["decomposition"].ok  # the checks catch a wrong row


def test_check_model_stage_writes_a_report_or_nothing(
    tiny_prepared: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cotlens.models import adapters as A

    rep = C.check_prepared(tiny_prepared, tmp_path / "ok.json", "cpu")
    assert json.loads((tmp_path / "ok.json").read_text()) == json.loads(json.dumps(rep, default=str))
    assert rep["model"] == "tiny" and all(c["ok"] for c in rep["checks"].values())
    C.require(tmp_path / "ok.json", "decomposition", "DLA")  # passes: nothing raised
    monkeypatch.setitem(A.OVERRIDES, "llama", {"logit_scale": 2.0, "notes": "a wrong scale"})
    with pytest.raises(CotlensError, match=r"model 'tiny' \(llama\) fails the self-check 'lens'.*every study"):
        C.check_prepared(tiny_prepared, tmp_path / "bad.json", "cpu")
    assert not (tmp_path / "bad.json").exists() and not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize("family", ["gemma2", "gemma3_text", "olmo2"])
def test_neuron_writes_under_a_post_norm_count_its_eps(family: str) -> None:
    """A small FFN output (mean square near the norm's eps, as on real Gemma 3 270M tokens)
    makes 1/rms(f) and 1/sqrt(ms(f) + eps) differ: the neuron writes must use the latter."""
    from cotlens.core import contributions as W

    m = zoo.perturb(zoo.build(family))
    with torch.no_grad():
        for b in m.model.layers:
            b.mlp.down_proj.weight.mul_(1e-3)
    ad, d = adapter_for(m), dims(m)
    ids = C.check_tokens(d)
    assert C.check_decomposition(Adapted(m, ad, d), ids).ok

    def eps_blind(model: Any, a: Any, layer: int, f: torch.Tensor) -> torch.Tensor:
        return 1.0 / W.norm_scale(f, W.centres(W._post(model, a, layer, "ffn"), f.shape[-1]))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(C, "token_scale", eps_blind)
        assert not C.check_decomposition(Adapted(m, ad, d), ids).ok  # the check sees the difference


def test_check_model_command(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import transformers as tf

    from cotlens.pipeline.cli import main

    zoo.perturb(zoo.build("gpt_neox")).save_pretrained(tmp_path / "neox")
    assert main(["check-model", str(tmp_path / "neox"), "--json", str(tmp_path / "neox.json")]) == 0
    out = capsys.readouterr().out
    assert "gpt_neox" in out and out.count(" ok ") == len(CHECKS) and "cache arg layer_past" in out
    assert json.loads((tmp_path / "neox.json").read_text())["checks"]["patching"]["ok"]
    cfg = zoo.config("opt")
    cfg.do_layer_norm_before = False  # post-LN: the head decomposition cannot be exact
    torch.manual_seed(0)
    zoo.perturb(tf.AutoModelForCausalLM.from_config(cfg).eval()).save_pretrained(tmp_path / "opt")
    assert main(["check-model", str(tmp_path / "opt")]) == 1
    out = capsys.readouterr().out
    assert "decomposition  FAIL" in out and "refuses the methods that need it" in out
    assert main(["check-model", str(tmp_path / "nope")]) == 2


def test_stored_vectors_read_back_as_the_models_own_activations(hand_model: Any, tmp_path: Any) -> None:
    """extract -> Parquet -> cotlens.read_vectors: `resid` [d_model] equals the model's own
    hidden states, and `attn_heads` [n_heads, head_dim], put through the attention output
    projection, equals that projection's output in the model's forward."""
    from types import SimpleNamespace

    import cotlens
    from cotlens.circuits import extract as X
    from cotlens.core.hooks import site_module
    from cotlens.io.parquet import RunMeta, read_table, write_table
    from cotlens.models.loading import Loaded

    model = hand_model
    ad = adapter_for(model)
    d = dims(model, ad)
    lm = Loaded(model, SimpleNamespace(pad_token_id=0), ad, d, {}, torch.device("cpu"), "float32")
    row = X.SampleRow(0, 0, [5, 9, 11, 3], [5, 9], [7, 8, 12, 6], [1], 3)
    cfg = X.ExtractConfig()
    write_table(
        X.extract_batch(lm, [row], cfg, X.activation_schema(lm, cfg)), tmp_path / "a.parquet", RunMeta("t", "h")
    )
    t = read_table(tmp_path / "a.parquet")
    resid = cotlens.read_vectors(tmp_path / "a.parquet", "resid")
    heads = cotlens.read_vectors(t, "attn_heads")
    assert resid.shape == (t.num_rows, d.d_model) and heads.shape == (t.num_rows, d.n_heads, d.head_dim)
    ids = torch.tensor([[*row.prompt_ids, *row.token_ids]])
    outs: dict[int, torch.Tensor] = {}
    projs = [site_module(model, ad, "attn_heads", layer) for layer in range(d.n_layers)]
    hooks = [p.register_forward_hook(lambda m, a, o, i=i: outs.__setitem__(i, o)) for i, p in enumerate(projs)]
    try:
        with torch.no_grad():
            hs = model(ids, output_hidden_states=True).hidden_states
    finally:
        for h in hooks:
            h.remove()
    layer, pos = t.column("layer").to_pylist(), t.column("pos").to_pylist()
    # the clean and no-facts reads after their shared prefix (PrefixCache): the model's own argmax
    nf = torch.tensor([[*row.nofacts_ids, *row.token_ids]])
    shift = len(row.nofacts_ids) - len(row.prompt_ids)
    with torch.no_grad():
        ctx, prior = model(ids).logits[0].argmax(-1), model(nf).logits[0].argmax(-1)
    assert t.column("context_token").to_pylist() == [int(ctx[p]) for p in pos]
    assert t.column("prior_token").to_pylist() == [int(prior[p + shift]) for p in pos]
    for i, (la, p) in enumerate(zip(layer, pos, strict=True)):
        if la < d.n_layers - 1:  # HF's last hidden state may carry the final norm
            torch.testing.assert_close(torch.from_numpy(resid[i].copy()), hs[la + 1][0, p], rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            mine = projs[la](torch.from_numpy(heads[i].reshape(-1).copy()))
        torch.testing.assert_close(mine, outs[la][0, p], rtol=1e-4, atol=1e-4)


def test_activations_recorded_while_generating_equal_the_extraction(hand_model: Any) -> None:
    """circuits_sample's activations (recorded by the generation's own forwards, the
    prompt's prefix run first and kept for the no-facts read, the last token fed once more)
    equal ``extract_batch``'s on every family: the same positions and tokens, the vectors
    to float32 round-off (past the sliding windows: prompts of 9-14 tokens, window 5)."""
    from types import SimpleNamespace

    import numpy as np

    import cotlens
    from cotlens.circuits import extract as X
    from cotlens.core.hooks import StepCapture
    from cotlens.core.sampling import SampleConfig, generate_batch
    from cotlens.models.loading import Loaded

    model = hand_model
    ad = adapter_for(model)
    d = dims(model, ad)
    lm = Loaded(model, SimpleNamespace(pad_token_id=0), ad, d, {}, torch.device("cpu"), "float32")
    clean = [[5, 9, 11, 3, 17, 4, 8, 21, 6, 30], [7, 12, 13, 5, 9, 40, 41, 42, 22, 23, 24, 25, 2, 19]]
    nofacts = [[5, 9, 11, 3, 8, 21, 6, 30], [7, 12, 13, 5, 9, 22, 23, 24, 25, 2, 19]]
    cfg = X.ExtractConfig(mlp=ad.router is None)  # MoE experts have no single FFN neuron vector
    stub = [X.SampleRow(i, 0, c, n, [], [], -1) for i, (c, n) in enumerate(zip(clean, nofacts, strict=True))]
    split = X.split_points(stub)
    assert split == [4, 5]
    kept: list[Any] = []
    with StepCapture(model, ad, X.sites_of(cfg), 2) as cap:
        gens = generate_batch(
            model,
            clean,
            SampleConfig(max_new_tokens=5),
            0,
            set(),
            lambda ids: "answer" if len(ids) == 3 and ids[0] % 2 == 0 else None,
            torch.device("cpu"),
            on_step=cap.rows,
            split=split,
            on_split=lambda past, mask: kept.append((past, mask)),
            feed_last=True,
        )
        captured = [cap.row(r) for r in range(2)]
    rows = [
        X.SampleRow(i, 0, c, n, g.token_ids, [0, len(g.token_ids) - 1], len(g.token_ids) - 1)
        for i, (c, n, g) in enumerate(zip(clean, nofacts, gens, strict=True))
    ]
    schema = X.activation_schema(lm, cfg)
    # a window shorter than the batch: no prefix is run apart (padding would sit inside the
    # rows), and the no-facts sequences run whole
    assert bool(kept) == all(w >= 2 * 14 + 5 for w in windows(model)), (ad.family, windows(model))
    got = X.captured_table(lm, rows, captured, kept[0] if kept else None, cfg, schema)
    want = X.extract_batch(lm, rows, cfg, schema)
    for col in want.column_names:
        if col in ("resid", "attn_heads", "mlp"):
            a, b = cotlens.read_vectors(got, col), cotlens.read_vectors(want, col)
            scale = float(np.abs(b).max())
            np.testing.assert_allclose(a.reshape(len(a), -1), b.reshape(len(b), -1), rtol=0, atol=2e-5 * scale)
        else:
            assert got.column(col).to_pylist() == want.column(col).to_pylist(), (ad.family, col)

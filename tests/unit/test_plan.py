"""cotlens plan: its counts are checked against the model and the DAG, its arithmetic
against hand sums; how close its times come to real runs is in docs/benchmarks.md."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from cotlens.errors import CotlensError
from cotlens.models import zoo
from cotlens.pipeline import plan as P

ROOT = Path(__file__).resolve().parents[2]
RATES = P.Rates(50e9, 10e9, 2e-4, name="test")


@pytest.mark.parametrize("family", ["llama", "qwen2", "mixtral"])
def test_the_shape_counts_the_weights_a_token_goes_through(family: str) -> None:
    """Shape.active (the FLOPs of a token are 2x it) equals the model's own attention and
    FFN matrices, summed from its parameters (each routed expert counted top_k times)."""
    m = zoo.build(family)
    s = P.Shape.from_config(m.config.to_dict())
    linear = 0
    for name, p in m.named_parameters():
        if p.dim() < 2 or "embed" in name or "lm_head" in name or "norm" in name:
            continue
        if "gate.weight" in name and "mlp.gate" in name and p.shape[0] == s.experts:
            continue  # the router: a tiny [experts, d] matmul
        linear += p.numel()
    if s.experts > 1:
        per_expert = 3 * s.d_model * s.d_mlp
        linear -= s.layers * per_expert * (s.experts - s.top_k)
    assert s.active == linear


def test_the_times_are_the_sum_of_their_parts() -> None:
    s = P.Shape(2, 64, 256, 4, 4, 16, 1000)
    w = P.Work(calls=3, tokens=500, ctx=10, readouts=7, loads=0)
    want = (500 * s.flops(10) + 7 * s.readout) / RATES.flops_per_s + 3 * RATES.call_s_per_layer * 2
    assert RATES.seconds(w, s, 4) == pytest.approx(want)
    from cotlens.core.cost import times

    twice = times(w, 2)
    assert RATES.seconds(twice, s, 4) == pytest.approx(2 * want)
    gen = P.Work(steps=5, generated=40, step_ctx=100, loads=0)
    per_step = RATES.call_s_per_layer * 2 + s.active * 4 / RATES.bytes_per_s
    per_token = (s.flops(100) + s.readout) / RATES.flops_per_s + s.kv_bytes(4) * 100 / RATES.bytes_per_s
    assert RATES.seconds(gen, s, 4) == pytest.approx(5 * per_step + 40 * per_token)


def test_a_calibrated_decode_charges_the_context_at_its_own_rate() -> None:
    """With a calibrated decode-attention rate every generated token's context costs its
    keys and values at that rate (the attention FLOPs are in it, not charged again);
    uncalibrated (0), the FLOPs and the bytes are charged as before."""
    from dataclasses import replace

    s = P.Shape(2, 64, 256, 4, 2, 16, 1000)
    gen = P.Work(steps=5, generated=40, step_ctx=100, loads=0)
    kv = replace(RATES, kv_bytes_per_s=2e9)
    per_step = RATES.call_s_per_layer * 2 + s.active * 4 / RATES.bytes_per_s
    per_token = (s.flops(0) + s.readout) / RATES.flops_per_s + s.kv_bytes(4) * 100 / 2e9
    assert kv.seconds(gen, s, 4) == pytest.approx(5 * per_step + 40 * per_token)
    assert kv.seconds(gen, s, 4) > RATES.seconds(gen, s, 4)  # 2 GB/s of cache is slower than 10 GB/s


def test_the_decode_calibration_measures_a_real_decode_step() -> None:
    """decode_rate times masked decode steps after a short and a long cache filled in place
    (no prefill): a positive, finite rate on a grouped-query Llama; a model whose cache it
    cannot fill gets 0 (not calibrated), never an exception."""
    import torch

    m = zoo.build("llama")
    s = P.Shape.from_config(m.config.to_dict())
    rate = P.decode_rate(m, s, 4, torch.Generator().manual_seed(0))
    assert 0 < rate < math.inf

    class Broken(torch.nn.Module):
        config = m.config

        def get_input_embeddings(self) -> torch.nn.Module:
            return m.get_input_embeddings()

        def forward(self, **_: Any) -> Any:
            raise RuntimeError("no cache here")

    Broken.parameters = m.parameters  # type: ignore[method-assign]
    assert P.decode_rate(Broken(), s, 4, torch.Generator().manual_seed(0)) == 0.0


def _default() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_the_plan_covers_every_model_stage_of_the_configured_dag(tmp_path: Path) -> None:
    """Every rule that loads a model appears once per model of its studies; a study that is
    off leaves its stages out; the totals name the dominant stage."""
    from test_profiles import model_rules

    cfg = _default()
    rates = {m: RATES for m in ("smollm2-135m", "refusal-moe")}
    rows = P.build(cfg, tmp_path, "h100", 1, log=lambda _: None, rates=rates)
    got = {(r.stage, r.model) for r in rows}
    want = {(s, "smollm2-135m") for s in model_rules() if not s.startswith(("experts_", "models_tiny"))}
    want |= {(s, "refusal-moe") for s in model_rules() if s.startswith("experts_") or s == "models_check"}
    want |= {("models_prepare", "smollm2-135m"), ("models_train", "refusal-moe")}
    assert got == want
    assert all(r.cpu_s > 0 and r.gpu_s > 0 and r.peak_gb > 1 for r in rows)
    text = P.render(rows, "h100", 1)
    assert "GPU-hours" in text and "dominant stage: " in text
    off = P.build({**cfg, "studies": ["digits"]}, tmp_path, "h100", 1, log=lambda _: None, rates=rates)
    assert {r.stage for r in off} == {"models_prepare", "models_check", "digits_confidence"}
    res = P.slurm_resources(rows)
    assert set(res) == {r.stage for r in rows} and all(v["runtime"] >= 30 for v in res.values())


def test_the_plan_scales_with_the_design(tmp_path: Path) -> None:
    """Twice the random seeds of Study 2 is about twice its effects stage; the paper's
    Llama-2-7B costs far more GPU time than the default model."""
    cfg = _default()
    rates = {"smollm2-135m": RATES, "refusal-moe": RATES, "llama-2-7b": RATES}

    def row(c: dict, name: str, model: str = "smollm2-135m") -> P.Row:
        rows = P.build(c, tmp_path, "h100", 1, log=lambda _: None, rates=rates)
        return next(r for r in rows if r.stage == name and r.model == model)

    def stage(c: dict, name: str, model: str = "smollm2-135m") -> float:
        return row(c, name, model).cpu_s

    more = {**cfg, "neurons": {**cfg["neurons"], "effects": {**cfg["neurons"]["effects"], "random_seeds": 40}}}
    a, b = row(cfg, "neurons_effects").work, row(more, "neurons_effects").work
    n = len(cfg["neurons"]["effects"]["variants"])  # 7 variants, then the concept set and 20 (40) random sets
    assert b.generated / a.generated == pytest.approx((n + 41) / (n + 21))
    assert b.tokens / a.tokens == pytest.approx((n + 41) / (n + 21))
    big = {**cfg, "active_models": ["llama-2-7b"], "studies": ["digits"]}
    assert stage(big, "digits_confidence", "llama-2-7b") > 20 * stage(cfg, "digits_confidence")


def test_an_unknown_model_or_gpu_is_one_error(tmp_path: Path) -> None:
    cfg = _default()
    cfg["models"]["mystery"] = {"source": "hub", "repo": "someone/unknown"}
    with pytest.raises(CotlensError, match="does not know the shape of model 'mystery'"):
        P.build({**cfg, "active_models": ["mystery"]}, tmp_path, "h100", 1, rates={"mystery": RATES})
    with pytest.raises(CotlensError, match="unknown GPU class 'tpu'"):
        P.build(cfg, tmp_path, "tpu", 1, rates={})
    assert math.isfinite(P.peak_gb(P.Shape(1, 8, 8, 1, 1, 8, 10), P.Work(), 4))


def _paper_7b_rows(root: Path) -> list[P.Row]:
    from cotlens.pipeline.cli import _merge

    cfg = _merge([str(ROOT / "config.yaml"), str(ROOT / "config" / "paper.yaml")])
    cfg["active_models"] = ["llama-2-7b"]
    rates = {"llama-2-7b": RATES, "refusal-moe": RATES}
    return P.build(cfg, root, "h100", 1, log=lambda _: None, rates=rates)


def test_the_slurm_profile_holds_the_plans_resources(tmp_path: Path) -> None:
    """workflow/profiles/slurm/config.yaml is what `cotlens plan --config config/paper.yaml
    --model llama-2-7b --gpu h100 --slurm-profile` writes (the GPU rates are the datasheet's,
    the token counts those without the tokenizer: no calibration enters it): rerun it when
    the plan or the paper config changes. Every model rule has its line; CPUs and GPUs kept."""
    from test_profiles import model_rules

    text = (ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text()
    rows = _paper_7b_rows(tmp_path)
    how = " --config config/paper.yaml --model llama-2-7b --gpu h100"
    assert P.slurm_profile(text, rows, how) == text, "regenerate the profile (see the test's docstring)"
    res = yaml.safe_load(text)["set-resources"]
    planned = P.slurm_resources(rows)
    assert set(planned) == (set(model_rules()) - {"models_tiny"}) | {"models_prepare", "models_train"}
    for rule, r in planned.items():
        assert {k: res[rule][k] for k in ("runtime", "mem_mb")} == r
        assert res[rule]["gpu" if rule not in ("models_prepare", "models_train") else "cpus_per_task"] >= 1
    suff = next(r for r in rows if r.stage == "circuits_sufficiency")
    assert res["circuits_sufficiency"]["runtime"] == math.ceil(2 * suff.gpu_s / 60) > 30  # 2 x the plan, in minutes
    # rewriting keeps every other line, and the rewrite of a rewrite is the same text
    again = P.slurm_profile(P.slurm_profile(text, rows[:3], how), rows, how)
    assert again == text
    with pytest.raises(CotlensError, match="no block for the plan's resources"):
        P.slurm_profile("executor: slurm\n", rows, how)


def test_the_shared_prefix_is_the_one_generation_runs_once() -> None:
    """Prompts.shared is sampling.shared_prefix_len per batch of the table's rows (its
    minimum of 16 tokens included): the few-shot exemplars, not a fixed share of the prompt."""
    exemplars = "Q: 2 + 3 = ? A: 5. " * 12
    rows = [{"prompt": exemplars + f"Q: {i} + {i} = ?"} for i in (12, 34, 56, 78, 90, 21)]
    p = P.Prompts(rows, P.pseudo_tokens)
    full = p.count(exemplars)
    assert full - 1 <= p.shared("prompt", 3) <= full + 1
    assert p.shared("prompt", 6) == p.shared("prompt", 3)
    assert p.shared("prompt", 1) == 0  # a row alone shares nothing
    assert P.Prompts(rows[:5], P.pseudo_tokens).shared("prompt", 4) == pytest.approx(p.shared("prompt", 4) / 2, abs=1)
    short = P.Prompts([{"prompt": "abc " + str(i)} for i in range(4)], P.pseudo_tokens)
    assert short.shared("prompt", 4) == 0  # under the 16-token minimum
    toks = P.pseudo_tokens("a" * 36)
    assert len(toks) == 10 and "".join(toks) == "a" * 36


def test_cotlens_plan_model_and_slurm_profile_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cotlens plan --model NAME --slurm-profile FILE`: an unknown model and a profile
    without the plan's block are one error each, before the plan is computed and with the
    file untouched; a good call plans that model alone and rewrites the profile's block."""
    from cotlens.pipeline import cli

    rows = _paper_7b_rows(tmp_path)
    planned: list[list[str]] = []

    def build(cfg: dict[str, Any], root: Path, gpu: str, threads: int, **_: Any) -> list[P.Row]:
        planned.append(list(cfg["active_models"]))
        return rows

    monkeypatch.setattr(P, "build", build)
    monkeypatch.chdir(ROOT)
    assert cli.main(["plan", "--model", "nope"]) == 2
    assert "--model 'nope' is not in the models registry" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("executor: slurm\n")
    assert cli.main(["plan", "--model", "llama-2-7b", "--slurm-profile", str(bad)]) == 2
    assert "no block for the plan's resources" in capsys.readouterr().err
    assert bad.read_text() == "executor: slurm\n" and planned == []

    shipped = (ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text()
    mine = tmp_path / "slurm.yaml"
    stale = shipped.replace("circuits_sufficiency: {mem_mb: ", "circuits_sufficiency: {mem_mb: 1", 1)
    assert stale != shipped
    mine.write_text(stale)  # a stale block
    args = ["plan", "--config", "config/paper.yaml", "--model", "llama-2-7b", "--gpu", "h100"]
    assert cli.main([*args, "--slurm-profile", str(mine)]) == 0
    assert planned == [["llama-2-7b"]]
    assert mine.read_text() == shipped  # the block rewritten from the plan, every other line kept


def test_the_plan_counts_the_candidate_pairs_the_stage_builds(
    tiny_prepared: Path,
    tiny_model_src: Path,
    tiny_config: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the model's tokenizer the plan counts circuits_pairs' candidates from the gold
    chains (qwen2.5-1.5b on config/qwen-circuits.yaml: 93, where the old constant, 2.7 a
    sample, said 22; the stage built ~72 from the model's own CoT and took 183 s against a
    planned 50 s), with each one's length and first differing position (the patch engine's
    work). The stage, run with cot: gold, builds exactly those; without a tokenizer the
    constant stays."""
    import json

    from cotlens.circuits import cost, tables
    from cotlens.circuits.stages import pairs as pairs_stage
    from cotlens.core.cost import CostInputs, Prompts
    from cotlens.io.parquet import RunMeta, to_table, write_table
    from cotlens.pipeline.stageparams import stage_params

    SHAPE = P.Shape.from_config(json.loads((tiny_model_src / "config.json").read_text()))
    import copy

    cfg = copy.deepcopy(tiny_config)
    cfg["circuits"]["pairs"] = {**cfg["circuits"]["pairs"], "cot": "gold", "min_kl": 0.0, "require_correct": False}
    rows = P.prompt_rows("circuits", cfg)
    tok = P.tokenizer_of(tiny_model_src)
    assert tok is not None
    planned = cost.candidate_pairs(CostInputs(cfg, SHAPE, Prompts(rows, P.pseudo_tokens, tok)))

    built: list[tuple[int, int]] = []
    real = pairs_stage.build_pairs

    def counting(*a, **k):  # type: ignore[no-untyped-def]
        for pair in real(*a, **k):
            built.append((len(pair.clean_ids), pair.corrupt_pos))
            yield pair

    monkeypatch.setattr(pairs_stage, "build_pairs", counting)
    files = {n: str(tmp_path / f"{n}.parquet") for n in ("prompts", "samples", "pairs")}
    write_table(
        to_table({f.name: [r[f.name] for r in rows] for f in tables.CIRCUITS_PROMPTS}, tables.CIRCUITS_PROMPTS),
        files["prompts"],
        RunMeta("x", "x"),
    )
    write_table(tables.SAMPLES.empty_table(), files["samples"], RunMeta("x", "x"))
    params = stage_params("circuits_pairs", cfg)
    rt = {"dtype": "float32", "device": "cpu", "attn": "eager"}
    pairs_stage.run(
        {"prompts": files["prompts"], "samples": files["samples"], "model": str(tiny_prepared)},
        {"pairs": files["pairs"]},
        params,
        rt,
        1,
    )
    assert planned == built and len(built) > 0
    assert all(0 < d < t for t, d in built)  # the prompts differ somewhere inside
    without = cost.stages(CostInputs(cfg, SHAPE, Prompts(rows, P.pseudo_tokens)))["circuits_pairs"]
    assert "~2.7 per sample" in without.note


class Forwards:
    """Counts the decoder's forward calls and their token-forwards (a forward pre-hook)."""

    def __init__(self, model: Any) -> None:
        from cotlens.models.adapters import adapter_for, get

        self.calls, self.tokens = 0, 0
        base = get(model, adapter_for(model).base)
        self.handle = base.register_forward_pre_hook(self.count, with_kwargs=True)

    def count(self, _m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.calls += 1
        self.tokens += int(ids.numel())


@pytest.mark.parametrize("family", ["llama", "mistral", "gemma2"])
def test_the_checks_cost_is_the_forwards_the_checks_run(family: str) -> None:
    """models_check's plan (cotlens.models.cost.check_cost) counts the forwards, tokens and
    unembedding read-outs the checks run, at the length the checks choose from the config (longer than a sliding
    window: mistral's and gemma2's); qwen2.5-1.5b's check was planned at 10 forwards of 96
    tokens (38 s, +85%) where it runs 6 of 18."""
    from cotlens.models import checks
    from cotlens.models.cost import check_cost

    m = zoo.build(family)
    length = checks.length_for(m.config.to_dict())
    assert length == checks.check_length(m) == (zoo.WINDOW + 4 if family != "llama" else checks.MIN_LENGTH)
    seen = Forwards(m)
    from cotlens.models.adapters import adapter_for, get

    read = [0]  # positions through the unembedding
    get(m, adapter_for(m).unembed).register_forward_hook(
        lambda _m, _a, o: read.__setitem__(0, read[0] + o[..., 0].numel())
    )
    checks.run_checks(m)
    w = check_cost(P.Shape.from_config(m.config.to_dict()), length)
    assert (w.steps, w.tokens, w.readouts) == (seen.calls, seen.tokens, read[0])


def test_the_heads_and_sufficiency_costs_are_the_forwards_their_methods_run() -> None:
    """circuits_heads reads a pair in one forward of its clean prompt; circuits_sufficiency
    runs a pair's circuits as rows of CIRCUIT_ROWS a forward and one forward per
    false-ontology question for the means: what circuits.cost charges (the old plan charged
    heads three forwards a pair: +62-70% on qwen2.5-1.5b and smollm2)."""
    import math

    import torch

    from cotlens.circuits import heads as H
    from cotlens.models.adapters import Adapted, adapter_for, dims, get

    m = zoo.build("llama")
    ad = adapter_for(m)
    mh = Adapted(m, ad, dims(m, ad))
    ids = list(range(3, 15))
    seen = Forwards(m)
    read = [0]  # positions through the unembedding
    get(m, ad.unembed).register_forward_hook(lambda _m, _a, o: read.__setitem__(0, read[0] + o[..., 0].numel()))
    H.read_heads(mh, ids, ids[-1], ids[-2])
    d = mh.dims
    assert (seen.calls, seen.tokens, read[0]) == (1, len(ids), 2 * (d.n_layers * d.n_heads + 1))
    means = H.mean_head_outputs(mh, [ids[:5], ids[:7]])
    assert (seen.calls, seen.tokens) == (3, len(ids) + 12)
    conds = H.CIRCUIT_ROWS + 3
    keeps = [{(0, 0)}] * conds
    before = read[0]
    got = H.circuit_logits_many(mh, ids, keeps, means)
    assert got.shape[0] == conds and isinstance(got, torch.Tensor) and read[0] - before == conds
    assert (seen.calls, seen.tokens) == (3 + math.ceil(conds / H.CIRCUIT_ROWS), len(ids) + 12 + conds * len(ids))


def test_the_sample_plan_holds_what_the_recorded_vectors_hold(
    tiny_prepared: Path, tiny_model_src: Path, tiny_config: dict[str, Any]
) -> None:
    """circuits_sample's peak counts the vectors StepCapture holds for a batch: every layer
    at the prompt's last token and each of max_new_tokens generated tokens (rows that run to
    the limit, the last one fed once more), resid + attn_heads (+ mlp)."""
    import copy
    import json

    from cotlens.circuits import cost
    from cotlens.circuits.extract import ExtractConfig, sites_of
    from cotlens.core.cost import CostInputs, Prompts
    from cotlens.core.hooks import StepCapture
    from cotlens.core.sampling import SampleConfig, generate_batch
    from cotlens.models.loading import load

    shape = P.Shape.from_config(json.loads((tiny_model_src / "config.json").read_text()))
    lm = load(tiny_prepared, "float32", "cpu")
    for mlp in (False, True):
        cfg = copy.deepcopy(tiny_config)
        cfg["circuits"]["sample"] = {**cfg["circuits"]["sample"], "batch_size": 3, "max_new_tokens": 4}
        cfg["circuits"]["extract"] = {**cfg["circuits"]["extract"], "mlp": mlp}
        rows = P.prompt_rows("circuits", cfg)
        planned = cost.stages(CostInputs(cfg, shape, Prompts(rows, P.pseudo_tokens)))["circuits_sample"].held
        prompts = [[5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15, 16]]
        with StepCapture(lm.model, lm.adapter, sites_of(ExtractConfig(mlp=mlp)), 3) as cap:
            generate_batch(
                lm.model,
                prompts,
                SampleConfig(max_new_tokens=4),
                0,
                set(),
                lambda ids: None,
                lm.device,
                on_step=cap.rows,
                feed_last=True,
            )
            held = sum(int(v.numel()) for r in range(3) for v in cap.row(r)[0].values())
        assert planned == held, (mlp, planned, held)
        assert P.peak_gb(shape, P.Work(held=planned), 4) - P.peak_gb(shape, P.Work(), 4) == pytest.approx(
            4 * held / 1e9
        )

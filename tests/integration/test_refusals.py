"""A method the self-checks refuse is refused inside its stage, in one line, before any
work: the stage writes its tables empty with the reason in their metadata, the stages that
read them refuse too, and the figures say "not testable on this model" with the reason,
while the run's other studies go on."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cotlens.circuits import figures as circuit_plots
from cotlens.circuits import tables
from cotlens.circuits.findings import CLAIMS as CIRCUIT_CLAIMS
from cotlens.core.verdicts import NOT_TESTABLE
from cotlens.io.parquet import read_meta, read_table, to_table, write_table
from cotlens.models import checks as C
from cotlens.models import zoo
from cotlens.neurons import figures as neuron_plots
from cotlens.neurons.findings import CLAIMS as NEURON_CLAIMS
from cotlens.pipeline.draw import draw_figure
from cotlens.pipeline.stage import REFUSED, refusal

pytestmark = pytest.mark.integration

RT = {"dtype": "float32", "device": os.environ.get("COTLENS_TEST_DEVICE", "cpu"), "attn": "eager"}


@pytest.fixture(scope="module")
def post_ln_opt(tiny_model_src: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """OPT-350m's layout (LayerNorm after the residual add), prepared as a user's model
    directory, with its check report: no head decomposition is exact there."""
    from cotlens.models.prepare import prepare
    from cotlens.models.registry import resolve

    root = tmp_path_factory.mktemp("postln")
    src = zoo.export("opt", root / "src", tiny_model_src, do_layer_norm_before=False)
    prepared = root / "opt"
    prepare(resolve("opt", {"opt": {"source": "local", "path": str(src)}}), prepared)
    report = root / "checks.json"
    C.check_prepared(prepared, report, "cpu")
    return prepared, report


def _pairs(path: Path, tiny_model_src: Path) -> Path:
    ids = [[5, 9, 11, 3, 7, 8, 12, 14, 20, 21, 22, 23], [5, 9, 11, 3, 7, 8, 12, 15, 20, 21, 22, 23]]
    cols: dict[str, list[Any]] = {f.name: [None] for f in tables.PAIRS}
    cols.update(
        pair_id=[0],
        subtask=["s"],
        clean_ids=[ids[0]],
        corrupt_ids=[ids[1]],
        clean_tok=[4],
        corrupt_tok=[6],
        corrupt_pos=[7],
        question_len=[4],
    )
    write_table(to_table(cols, tables.PAIRS), path, _meta(path))
    return path


def _meta(_p: Path) -> Any:
    from cotlens.io.parquet import RunMeta

    return RunMeta.of("circuits_pairs", {})


def test_dla_and_neurons_are_refused_on_post_ln_opt_before_loading(
    post_ln_opt: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cotlens.circuits.stages import heads
    from cotlens.neurons.stages import discovery, effects

    prepared, report = post_ln_opt
    rep = json.loads(report.read_text())
    assert not rep["checks"]["decomposition"]["ok"] and rep["checks"]["lens"]["ok"]
    monkeypatch.setattr("cotlens.models.loading.load_for_stage", _never)  # before any work: no model load
    monkeypatch.setattr(heads, "load_for_stage", _never)
    monkeypatch.setattr(discovery, "load_for_stage", _never)
    monkeypatch.setattr(effects, "load_for_stage", _never)
    out = tmp_path / "heads.parquet"
    assert (
        heads.run({"pairs": "unused", "model": str(prepared), "checks": str(report)}, {"heads": str(out)}, {}, RT, 1)
        == 0
    )
    why = read_meta(out)["extra"][REFUSED]
    assert "direct logit attribution is refused" in why and "'decomposition' failed" in why and "\n" not in why
    assert read_table(out).num_rows == 0 and read_table(out).schema.names == [f.name for f in tables.HEADS]
    prompts = _neuron_prompts(tmp_path)
    neurons = tmp_path / "neurons.parquet"
    cfg = {"batch_size": 2}
    discovery.run(
        {"prompts": str(prompts), "model": str(prepared), "checks": str(report)}, {"neurons": str(neurons)}, cfg, RT, 1
    )
    assert "neuron scoring" in read_meta(neurons)["extra"][REFUSED]
    eff = tmp_path / "effects.parquet"
    effects.run(
        {"prompts": str(prompts), "neurons": str(neurons), "model": str(prepared), "checks": str(report)},
        {"effects": str(eff)},
        {},
        RT,
        1,
    )
    assert refusal({"effects": str(eff)}) == read_meta(neurons)["extra"][REFUSED]  # passed on
    # the tested figures of the refused tables: not testable, with the reason, in the title
    for figure, table in (("answer_heads", out), ("neuron_ablation", eff)):
        outs = {e: str(tmp_path / f"{figure}.{e}") for e in ("png", "pdf", "json", "html")}
        study = "circuits" if figure == "answer_heads" else "neurons"
        outs["json"] = str(tmp_path / "results" / "r" / study / "opt" / "figures" / f"{figure}.json")
        Path(outs["json"]).parent.mkdir(parents=True, exist_ok=True)
        figures = (circuit_plots if study == "circuits" else neuron_plots).FIGURES
        claims = {**CIRCUIT_CLAIMS, **NEURON_CLAIMS}
        numbers = draw_figure(figures, claims, {"t": str(table)}, outs, {"figure": figure, "model": "opt", "dpi": 30})
        h = numbers["headline"]
        assert h["verdict"] == NOT_TESTABLE and h["reason"] == read_meta(table)["extra"][REFUSED]
        assert numbers["drawn_titles"][0].startswith("opt: not computed") and h["reason"] in numbers["drawn_titles"][0]
        assert Path(outs["png"]).stat().st_size > 0


def _never(*_a: Any, **_k: Any) -> Any:
    raise AssertionError("a refused stage loaded the model")


def _neuron_prompts(tmp_path: Path) -> Path:
    from cotlens.neurons.stages import prompts

    out = tmp_path / "nprompts.parquet"
    cfg = {
        "seed": 0,
        "n_problems": 4,
        "min_steps": 1,
        "max_steps": 2,
        "ops": ["+", "-"],
        "n_shots": 1,
        "gsm8k_path": "",
    }
    prompts.run({}, {"prompts": str(out)}, cfg, {}, 1)
    return out


def test_patching_refused_by_its_own_check_and_sufficiency_with_it(
    tiny_prepared: Path, tiny_model_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A family the engine cannot replay (here: the check raising, as Bloom's ALiBi and
    XGLM's mask did) is refused in one line before any pair is patched."""
    from cotlens.circuits.stages import patch, sufficiency

    def self_check(*_a: Any, **_k: Any) -> Any:  # the engine raising, as on Bloom before this round
        raise RuntimeError("The expanded size of the tensor (12) must match the existing size (4)")

    monkeypatch.setattr(patch, "self_check", self_check)
    monkeypatch.setattr(patch, "patch_pair", _never)
    pairs = _pairs(tmp_path / "pairs.parquet", tiny_model_src)
    outs = {"patching": str(tmp_path / "patching.parquet"), "pathways": str(tmp_path / "pathways.parquet")}
    assert patch.run({"pairs": str(pairs), "model": str(tiny_prepared)}, outs, {"exact_pairs": 1}, RT, 1) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "refused" in x]
    assert (
        len(line) == 1 and "activation patching is refused for model 'tiny'" in line[0] and "expanded size" in line[0]
    )
    assert "its self-check 'patching' failed" in line[0]
    for p in outs.values():
        assert read_table(p).num_rows == 0 and "activation patching is refused" in read_meta(p)["extra"][REFUSED]
    suff = tmp_path / "sufficiency.parquet"
    monkeypatch.setattr(sufficiency, "load_for_stage", _never)
    ins = {"pairs": str(pairs), "patching": outs["patching"], "prompts": "unused", "model": str(tiny_prepared)}
    assert sufficiency.run(ins, {"sufficiency": str(suff)}, {}, RT, 1) == 0
    assert refusal({"s": str(suff)}) == refusal({"p": outs["patching"]})


def test_a_window_shorter_than_the_pairs_is_checked_at_their_length(tiny_model_src: Path, tmp_path: Path) -> None:
    """The patch stage's check runs at its longest pair, not on 9 tokens."""
    import torch

    from cotlens.circuits.patching import self_check

    seen: list[int] = []

    def spy(mh: Any, ids: torch.Tensor, tol: float = 1e-4) -> Any:
        seen.append(int(ids.shape[1]))
        return self_check(mh, ids, tol)

    from cotlens.circuits.stages import patch
    from cotlens.models.prepare import prepare
    from cotlens.models.registry import resolve

    src = zoo.export("mistral", tmp_path / "src", tiny_model_src)  # a sliding window of 5 tokens
    prepare(resolve("m", {"m": {"source": "local", "path": str(src)}}), tmp_path / "m")
    pairs = _pairs(tmp_path / "pairs.parquet", tiny_model_src)
    outs = {"patching": str(tmp_path / "patching.parquet"), "pathways": str(tmp_path / "pathways.parquet")}
    cfg = {
        "exact_pairs": 1,
        "top_k": 2,
        "screen": "eap-ig",
        "screen_steps": 1,
        "positions_last": 2,
        "head_batch": 3,
        "shard_pairs": 8,
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(patch, "self_check", spy)
        assert patch.run({"pairs": str(pairs), "model": str(tmp_path / "m")}, outs, cfg, RT, 1) == 1
    assert seen == [12] and REFUSED not in read_meta(outs["patching"])["extra"]
    assert read_table(outs["patching"]).num_rows > 0


def test_expert_switching_refused_by_the_router_check_and_passed_on(
    tiny_prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """DBRX's router returns one tensor, Llama 4's (scores, logits): the routes stage's own
    `router` check fails on the loaded model before any prompt runs, and the map stage (no
    model input) and the effects stage pass the reason on without loading anything."""
    import torch

    from cotlens.experts.stages import effects, ftri, routes
    from cotlens.experts.stages import prompts as eprompts
    from cotlens.models.adapters import adapted
    from cotlens.models.loading import Loaded

    m = zoo.perturb(zoo.build("dbrx"))
    h = adapted(m)
    lm = Loaded(m, None, h.adapter, h.dims, {"name": "dbrx"}, torch.device("cpu"), "float32")
    monkeypatch.setattr(routes, "load_for_stage", lambda *_a, **_k: lm)
    monkeypatch.setattr(routes, "respond", _never)
    monkeypatch.setattr(effects, "load_for_stage", _never)
    prompts = str(tmp_path / "prompts.parquet")
    eprompts.run({}, {"prompts": prompts}, {"contrasts": ["events"], "n_quality": 2, "seed": 0}, {}, 1)
    outs = {"routes": str(tmp_path / "routes.parquet"), "responses": str(tmp_path / "responses.parquet")}
    assert routes.run({"prompts": prompts, "model": str(tiny_prepared)}, outs, {}, RT, 1) == 0
    why = read_meta(outs["routes"])["extra"][REFUSED]
    assert why.startswith("expert maps and switching is refused for model 'dbrx'") and "DbrxRouter" in why
    assert [x for x in capsys.readouterr().out.splitlines() if "refused" in x] == [
        f"experts_routes: refused on 'tiny': {why}"
    ]
    ft = str(tmp_path / "ftri.parquet")
    assert ftri.run({"prompts": prompts, **outs}, {"ftri": ft}, {}, RT, 1) == 0
    assert refusal({"f": ft}) == why and read_meta(ft)["fingerprint"] == read_meta(outs["routes"])["fingerprint"]
    eff = str(tmp_path / "effects.parquet")
    assert effects.run({"prompts": prompts, "ftri": ft, "model": str(tiny_prepared)}, {"effects": eff}, {}, RT, 1) == 0
    assert refusal({"e": eff}) == why

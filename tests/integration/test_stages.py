"""Stage-level behaviour: determinism, resumable sampling and extraction, bad inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cotlens.circuits import extract as extract_mod
from cotlens.circuits import samples
from cotlens.circuits import tables as circuits_tables
from cotlens.circuits.stages import prompts, sample
from cotlens.errors import CotlensError
from cotlens.io.parquet import RunMeta, read_table, to_table, write_table
from cotlens.neurons import tables as neurons_tables

pytestmark = pytest.mark.integration

PCFG = {
    "seed": 1,
    "n_per_cell": 1,
    "hops": [1, 2],
    "ontologies": ["fictional"],
    "distractors": ["none", "relevant"],
    "negation": [False, True],
    "n_shots": 1,
}
RT = {"dtype": "float32", "device": os.environ.get("COTLENS_TEST_DEVICE", "cpu"), "attn": "sdpa"}
ECFG = {"positions": ["last_prompt", "step_end", "answer"], "mlp": False}


def test_prompts_are_byte_identical(tmp_path: Path) -> None:
    prompts.run({}, {"prompts": str(tmp_path / "a.parquet")}, PCFG, {}, 1)
    prompts.run({}, {"prompts": str(tmp_path / "b.parquet")}, PCFG, {}, 1)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    prompts.run({}, {"prompts": str(tmp_path / "c.parquet")}, {**PCFG, "seed": 2}, {}, 1)
    assert (tmp_path / "a.parquet").read_bytes() != (tmp_path / "c.parquet").read_bytes()


def test_empty_prompt_set_is_one_clear_error(tmp_path: Path, tiny_prepared: Path) -> None:
    empty = tmp_path / "empty.parquet"
    write_table(
        to_table({f.name: [] for f in circuits_tables.CIRCUITS_PROMPTS}, circuits_tables.CIRCUITS_PROMPTS),
        empty,
        RunMeta("circuits_prompts", "x"),
    )
    with pytest.raises(CotlensError, match="prompt set .* is empty"):
        sample.run(
            {"prompts": str(empty), "model": str(tiny_prepared)},
            {"samples": str(tmp_path / "s.parquet"), "activations": str(tmp_path / "a")},
            {"max_new_tokens": 4, "batch_size": 2, "extract": ECFG},
            RT,
            1,
        )
    assert not (tmp_path / "s.parquet").exists() and not (tmp_path / "s.parquet.partial").exists()


def test_sample_resumes_finished_batches_and_matches_uninterrupted(
    tmp_path: Path, tiny_prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """circuits_sample killed in its third batch: nothing looks complete, the two finished
    batches (a shard of samples and one of activations each) are kept, and the rerun
    computes only the third, to the bytes of an uninterrupted run."""
    prompts.run({}, {"prompts": str(tmp_path / "p.parquet")}, PCFG, {}, 1)

    def run_sample(out: Path) -> None:
        sample.run(
            {"prompts": str(tmp_path / "p.parquet"), "model": str(tiny_prepared)},
            {"samples": str(out / "s.parquet"), "activations": str(out / "a")},
            {"max_new_tokens": 16, "batch_size": 3, "extract": ECFG},
            RT,
            1,
        )

    run_sample(tmp_path / "ref")
    calls = {"n": 0}
    real = samples.captured_table

    def dying(*a, **k) -> pa.Table:  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # the third batch
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(samples, "captured_table", dying)
    with pytest.raises(KeyboardInterrupt):
        run_sample(tmp_path / "out")
    out = tmp_path / "out"
    assert not (out / "a").exists() and not (out / "s.parquet").exists()  # nothing that looks complete
    for partial in (out / "a.partial", out / "s.parquet.partial"):
        assert [p.name for p in sorted(partial.iterdir())] == ["part-00000.parquet", "part-00001.parquet"]
    done = (out / "a.partial" / "part-00000.parquet").stat().st_mtime_ns

    calls["n"] = 0
    monkeypatch.setattr(
        samples, "captured_table", lambda *a, **k: (calls.__setitem__("n", calls["n"] + 1), real(*a, **k))[1]
    )
    run_sample(out)
    assert calls["n"] == 1  # 8 prompts in batches of 3: only the third batch runs again
    assert (out / "a" / "part-00000.parquet").stat().st_mtime_ns == done
    ref = sorted((tmp_path / "ref" / "a").iterdir())
    got = sorted((out / "a").iterdir())
    assert [p.name for p in ref] == [p.name for p in got] and len(ref) >= 4  # 3 shards and the index
    for a, b in zip(ref, got, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert read_table(tmp_path / "ref" / "s.parquet").equals(read_table(out / "s.parquet"))


def test_step_positions_point_at_step_ends(tmp_path: Path, tiny_prepared: Path) -> None:
    from cotlens.circuits import parsing
    from cotlens.models.loading import load

    lm = load(tiny_prepared, "float32", "cpu")
    text = " Wren is a wumpus. Every wumpus is bright. Wren is bright. So the answer is True."
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    parsed = parsing.parse_response(lm.tokenizer.decode(ids))
    steps, ans = samples.locate(lm.tokenizer, ids, parsed)
    assert len(steps) == 3
    for s in steps:
        assert lm.tokenizer.decode(ids[: s + 1]).endswith(".")
        assert not lm.tokenizer.decode(ids[:s]).endswith(".")
    assert lm.tokenizer.decode(ids[ans:]).strip().startswith("True")
    assert lm.tokenizer.decode(ids[:ans]).rstrip().endswith("answer is")


def test_non_finite_activations_are_not_written(tmp_path: Path, tiny_prepared: Path) -> None:
    import torch

    from cotlens.models.loading import load

    lm = load(tiny_prepared, "float32", "cpu")
    with torch.no_grad():
        lm.model.model.layers[0].mlp.down_proj.weight.fill_(float("nan"))
    row = extract_mod.SampleRow(0, 0, [5, 6, 7, 8], [5, 6], [9, 10], [0], -1)
    cfg = extract_mod.ExtractConfig()
    with pytest.raises(CotlensError, match="non-finite"):
        extract_mod.extract_batch(lm, [row], cfg, extract_mod.activation_schema(lm, cfg))


def test_neuron_effects_resumes_per_condition_to_identical_bytes(
    tmp_path: Path, tiny_prepared: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cotlens.neurons.methods import top_neurons
    from cotlens.neurons.stages import effects as nstage
    from cotlens.neurons.stages import prompts as arith_prompts

    acfg = {"seed": 0, "n_problems": 6, "min_steps": 1, "max_steps": 1, "ops": ["+"], "n_shots": 1, "gsm8k_path": ""}
    arith_prompts.run({}, {"prompts": str(tmp_path / "p.parquet")}, acfg, {}, 1)
    from transformers import AutoConfig

    from cotlens.models.loading import read_manifest

    mc = AutoConfig.from_pretrained(read_manifest(tiny_prepared)["path"])
    labels = {(0, 3): "add", (1, 5): "mul"}
    ranks = {(1, 7): 0, (0, 3): 1, (0, 9): 2, (1, 5): 3}  # four candidates; the top 2 are (1, 7) and (0, 3)
    cols: dict[str, list[object]] = {f.name: [] for f in neurons_tables.NEURONS}
    for layer, j in ((a, b) for a in range(mc.num_hidden_layers) for b in range(mc.intermediate_size)):
        concept = labels.get((layer, j))
        for k, v in (
            ("layer", layer),
            ("neuron", j),
            ("freq", 0.5),
            ("mean_act", 0.1),
            ("rank", ranks.get((layer, j), -1)),
            ("top_tokens", []),
            ("top_tokens_raw", []),
            ("concept", concept),
            ("labelled_by", "lexicon"),
            ("lexicon", concept),
        ):
            cols[k].append(v)
    write_table(to_table(cols, neurons_tables.NEURONS), tmp_path / "n.parquet", RunMeta("neurons_discovery", "x"))
    assert top_neurons(read_table(tmp_path / "n.parquet"), 3) == {1: [7], 0: [3, 9]}
    cfg = {
        "max_new_tokens": 6,
        "batch_size": 4,
        "variants": ["full", "formula_only"],
        "modes": ["zero"],
        "random_seeds": 2,
        "top_n": [3],
        "batch_rows": 6,  # two ablations side by side (3 evaluation problems each)
        "noise_scale": 1.0,
    }
    ins = {"prompts": str(tmp_path / "p.parquet"), "neurons": str(tmp_path / "n.parquet"), "model": str(tiny_prepared)}
    with pytest.raises(CotlensError, match="top 5 neurons, but .*n.parquet holds 4 candidates"):
        nstage.run(ins, {"effects": str(tmp_path / "bad.parquet")}, {**cfg, "top_n": [5]}, RT, 1)
    assert not (tmp_path / "bad.parquet").exists() and not (tmp_path / "bad.parquet.partial").exists()
    # 8 conditions: 2 variants; concept (2 neurons) + 2 random of 2; top-3 + 2 random of 3
    nstage.run(ins, {"effects": str(tmp_path / "ref.parquet")}, cfg, RT, 1)
    ref = read_table(tmp_path / "ref.parquet").to_pandas()
    sets = ref.groupby(["condition", "n_ablated"])["seed"].unique().map(sorted).to_dict()
    assert sets == {
        ("variant", 0): [-1],
        ("concept", 2): [-1],
        ("top", 3): [-1],
        ("random", 2): [0, 1],
        ("random", 3): [0, 1],
    }
    assert len(ref) == 8 * 3  # the 3 evaluation problems of 6 (odd ids; the even ones find the neurons)
    # side by side or one at a time: the same answers and activations
    nstage.run(ins, {"effects": str(tmp_path / "alone.parquet")}, {**cfg, "batch_rows": 3}, RT, 1)
    alone = read_table(tmp_path / "alone.parquet").to_pandas()
    floats = ["concept_act", "concept_active"]
    assert ref.drop(columns=floats).equals(alone.drop(columns=floats))
    np.testing.assert_allclose(ref[floats].to_numpy(float), alone[floats].to_numpy(float), rtol=1e-5, atol=1e-6)

    from cotlens.neurons import methods as nmethods

    real, calls = nmethods.random_like, {"n": 0}

    def dying(*a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # the second random draw, in the 2nd pair of ablations: 4 of 8 conditions are done
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(nmethods, "random_like", dying)
    out = tmp_path / "runs.parquet"
    with pytest.raises(KeyboardInterrupt):
        nstage.run(ins, {"effects": str(out)}, cfg, RT, 1)
    assert not out.exists() and len(list((tmp_path / "runs.parquet.partial").glob("part-*"))) == 4
    monkeypatch.setattr(nmethods, "random_like", real)
    capsys.readouterr()
    nstage.run(ins, {"effects": str(out)}, cfg, RT, 1)
    assert "8 shards, 4 reused from an interrupted run, 4 computed" in capsys.readouterr().out
    assert out.read_bytes() == (tmp_path / "ref.parquet").read_bytes()
    assert not (tmp_path / "runs.parquet.partial").exists()


def test_effect_conditions_order_and_shared_random_draws() -> None:
    from cotlens.neurons.methods import Condition, effect_conditions

    cfg = {"variants": ["names", "full"], "modes": ["zero", "mean"], "random_seeds": 2}
    got = effect_conditions(cfg, 5, [40])
    assert got[:2] == [Condition("variant", "full", "none", -1, 0), Condition("variant", "names", "none", -1, 0)]
    assert [(c.condition, c.mode, c.seed, c.n_ablated) for c in got[2:8]] == [
        ("concept", "zero", -1, 5),
        ("random", "zero", 0, 5),
        ("random", "zero", 1, 5),
        ("top", "zero", -1, 40),
        ("random", "zero", 0, 40),
        ("random", "zero", 1, 40),
    ]
    assert len(got) == 2 + 2 * 6
    same = effect_conditions(cfg, 5, [5])  # the top-5 set's random controls are the concept set's
    assert len(same) == 2 + 2 * 4 and len(set(same)) == len(same)


@pytest.mark.parametrize("split", [True, False])
def test_activations_captured_in_generation_equal_a_forward_over_the_samples(tiny_prepared: Path, split: bool) -> None:
    """``captured_table`` (the vectors and top tokens recorded while generating, the last
    generated token fed once more, the no-facts sequences run after the kept prefix) gives
    the rows ``extract_batch`` gives from forwards over the finished samples: the same
    positions and tokens, the vectors to float32 round-off."""
    import torch

    import cotlens
    from cotlens.core.hooks import StepCapture
    from cotlens.core.sampling import SampleConfig, generate_batch
    from cotlens.models.loading import load

    lm = load(tiny_prepared, "float32", "cpu")
    g = torch.Generator().manual_seed(4)
    vocab = lm.dims.vocab
    heads = [torch.randint(4, vocab, (n,), generator=g).tolist() for n in (12, 20, 7)]
    facts = [torch.randint(4, vocab, (n,), generator=g).tolist() for n in (5, 3, 6)]
    rest = [torch.randint(4, vocab, (n,), generator=g).tolist() for n in (4, 2, 3)]
    clean = [h + f + r for h, f, r in zip(heads, facts, rest, strict=True)]
    nofacts = [h + r for h, r in zip(heads, rest, strict=True)]
    cfg = extract_mod.ExtractConfig(positions=("last_prompt", "step_end", "answer"), mlp=True)
    stub = [extract_mod.SampleRow(i, 0, c, n, [], [], -1) for i, (c, n) in enumerate(zip(clean, nofacts, strict=True))]
    cuts = extract_mod.split_points(stub) if split else None
    assert cuts == [12, 20, 7] if split else cuts is None
    kept: dict[str, object] = {}
    with StepCapture(lm.model, lm.adapter, extract_mod.sites_of(cfg), len(clean)) as cap:
        gens = generate_batch(
            lm.model,
            clean,
            SampleConfig(max_new_tokens=6),
            int(lm.tokenizer.pad_token_id),
            set(),
            lambda ids: "answer" if len(ids) == 3 and ids[0] % 2 == 0 else None,
            lm.device,
            on_step=cap.rows,
            split=cuts,
            on_split=lambda past, mask: kept.update(past=past, mask=mask),
            feed_last=True,
        )
        captured = [cap.row(r) for r in range(len(clean))]
    assert [len(t) for _, t in captured] == [len(x.token_ids) + 1 for x in gens]  # every generated token fed
    rows = [
        extract_mod.SampleRow(i, 0, c, n, x.token_ids, [0, len(x.token_ids) - 1], len(x.token_ids) - 1)
        for i, (c, n, x) in enumerate(zip(clean, nofacts, gens, strict=True))
    ]
    schema = extract_mod.activation_schema(lm, cfg)
    prefix = (kept["past"], kept["mask"]) if split else None
    got_t = extract_mod.captured_table(lm, rows, captured, prefix, cfg, schema)  # type: ignore[arg-type]
    want_t = extract_mod.extract_batch(lm, rows, cfg, schema)
    got, want = got_t.to_pydict(), want_t.to_pydict()
    vectors = {"resid", "attn_heads", "mlp"}
    for col in want:
        if col in vectors:
            a, b = cotlens.read_vectors(got_t, col), cotlens.read_vectors(want_t, col)
            assert a.shape == b.shape and a.shape[0] == want_t.num_rows
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * float(np.abs(b).max()))
        else:
            assert got[col] == want[col], col
    assert set(got["pos_kind"]) == {"last_prompt", "step_end", "answer"}

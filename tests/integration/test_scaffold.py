"""tools/new_study.py: a fifth study generated in a copy of the checkout passes the layout
tests, is planned, and its tiny DAG runs to a figure whose number is the model's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def checkout_copy(dest: Path) -> Path:
    """The checkout's files (tracked, and untracked ones git does not ignore) in ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in listed:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd / "src")}  # the copy's cotlens, not this checkout's
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


ARCH_CHECK = """
import sys, torch
from cotlens.cloze.methods import answer_probs
from cotlens.core.hooks import Capture
from cotlens.models import zoo
from cotlens.models.adapters import adapter_for, readout
for family in sys.argv[1:]:
    model = zoo.perturb(zoo.build(family, attn="eager")).eval()
    ad = adapter_for(model)
    g = torch.Generator().manual_seed(1)
    vocab = int(model.config.vocab_size)
    prompts = [torch.randint(4, vocab, (n,), generator=g).tolist() for n in (3, 7, 5)]
    answers = [int(torch.randint(4, vocab, (1,), generator=g)) for _ in prompts]
    got = answer_probs(model, prompts, answers, torch.device("cpu"))
    for ids, ans, p in zip(prompts, answers, got):
        last = torch.tensor([[len(ids) - 1]])
        with torch.no_grad(), Capture(model, ad, ["resid"], last) as cap:
            model(input_ids=torch.tensor([ids]))
        h = cap.stacked("resid")[0, 0, -1]  # the last block's output at the prompt's last position
        want = float(torch.softmax(readout(model, ad, h[None]).float(), -1)[0, ans])
        assert abs(p - want) <= 1e-5 * max(want, 1e-6) + 1e-9, (family, p, want)
        assert want not in (0.0, 1.0)
    print(family + ":ok")
"""


def test_a_generated_study_passes_the_layout_tests_and_runs_its_tiny_dag(tmp_path: Path) -> None:
    wd = checkout_copy(tmp_path / "checkout")
    before = {p: p.read_text() for p in (wd / "config.yaml", wd / ".test" / "config.yaml")}
    t0 = time.perf_counter()
    made = run([sys.executable, "tools/new_study.py", "cloze"], wd)
    assert made.returncode == 0, made.stderr
    assert "study 5 'cloze'" in made.stdout
    again = run([sys.executable, "tools/new_study.py", "cloze"], wd)
    assert again.returncode == 2 and "'cloze' is taken" in again.stderr
    for path, text in before.items():  # only its section and its name in studies: were added
        new = path.read_text()
        assert new.startswith(text.split("studies: [", 1)[0]) and "cloze:" in new and len(new) > len(text)

    layout = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_layout.py"], wd)
    assert layout.returncode == 0, layout.stdout[-3000:]

    cfg = yaml.safe_load((wd / ".test" / "config.yaml").read_text())
    cfg["studies"] = ["cloze"]
    (wd / "cloze.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    dag = run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "cloze.yaml"], wd)
    assert dag.returncode == 0, dag.stderr[-4000:]
    seconds = time.perf_counter() - t0
    print(f"new study to a green tiny DAG: {seconds:.1f} s")

    figure = wd / "results" / "default" / "cloze" / "tiny" / "figures" / "cloze_answer_prob"
    numbers = json.loads(figure.with_suffix(".json").read_text())
    assert numbers["n"] == 4 and figure.with_suffix(".png").is_file()

    # the table's probabilities are the tiny model's own, recomputed here from its logits
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    weights = wd / "resources" / "models" / "tiny" / "weights"
    model = AutoModelForCausalLM.from_pretrained(str(weights), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(weights))
    prompts = pq.read_table(wd / "results" / "default" / "cloze" / "prompts.parquet").to_pylist()
    answers = pq.read_table(wd / "results" / "default" / "cloze" / "tiny" / "answers.parquet").to_pylist()
    for p, a in zip(prompts, answers, strict=True):
        assert a["answer_token"] == tok(p["answer"], add_special_tokens=False)["input_ids"][0]
        ids = tok(p["prompt"])["input_ids"]
        with torch.no_grad():  # the prompt and its answer in one sequence: the answer's position is read
            logits = model(input_ids=torch.tensor([[*ids, a["answer_token"]]])).logits[0, len(ids) - 1]
        assert a["p_answer"] == pytest.approx(float(torch.softmax(logits, -1)[a["answer_token"]]), rel=1e-5, abs=1e-9)
    assert numbers["mean_p_answer"] == pytest.approx(sum(a["p_answer"] for a in answers) / 4)

    # the generated method on other architectures at the perturbed init (default init hides
    # missing scales, norms and biases): its probabilities equal an independent read-out, the
    # adapter's final norm, unembedding and logit scaling on the last block's output
    families = ["qwen2", "gemma3_text", "cohere", "granite", "gpt2"]
    check = run([sys.executable, "-c", ARCH_CHECK, *families], wd)
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.split() == [f"{f}:ok" for f in families], check.stdout

    plan = run([sys.executable, "-m", "cotlens.pipeline.cli", "plan", "--config", "cloze.yaml"], wd)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "| cloze_answer | tiny |" in plan.stdout


@pytest.mark.parametrize("name", ["Bad-Name", "class", "circuits"])
def test_a_bad_or_taken_name_is_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    wd = checkout_copy(tmp_path / "checkout")
    before = {p: p.read_bytes() for p in wd.rglob("*") if p.is_file()}
    res = run([sys.executable, "tools/new_study.py", name], wd)
    assert res.returncode == 2 and res.stderr.startswith("new_study: ")
    assert {p: p.read_bytes() for p in wd.rglob("*") if p.is_file()} == before

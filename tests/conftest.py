"""Shared fixtures: a tiny random-init Llama (no download) and a scratch copy of the
workflow, so tests never touch the repository's own results or file times."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def device() -> str:
    """Where the engine-equality tests run: ``COTLENS_TEST_DEVICE=cuda`` on a GPU machine, else cpu."""
    dev = os.environ.get("COTLENS_TEST_DEVICE", "cpu")
    if dev.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            pytest.fail(f"COTLENS_TEST_DEVICE={dev} but torch sees no CUDA device; unset it to test on cpu")
    return dev


@pytest.fixture(scope="session")
def tiny_model_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cotlens.models.tiny import build_tiny_llama
    from cotlens.prompts import fewshot
    from cotlens.prompts.prontoqa import GeneratorConfig, generate

    corpus = [fewshot.prompt(e, s) for e, s in generate(GeneratorConfig(n_per_cell=2, n_shots=2, hops=(1, 2, 3, 4, 5)))]
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "src", corpus)


@pytest.fixture(scope="session")
def tiny_prepared(tiny_model_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cotlens.models.prepare import prepare
    from cotlens.models.registry import resolve

    out = tmp_path_factory.mktemp("prepared") / "tiny"
    prepare(resolve("tiny", {"tiny": {"source": "local", "path": str(tiny_model_src)}}), out)
    return out


TINY_CONFIG = {
    "studies": ["prontoqa", "digits"],
    "active_models": ["tiny"],
    "runtime": {"dtype": "float32", "device": "cpu", "attn": "eager"},
    "prompts": {
        "seed": 0, "n_per_cell": 1, "hops": [1, 2], "ontologies": ["fictional", "false"],
        "distractors": ["none"], "negation": [False, True], "n_shots": 1, "shuffle_facts": True,
    },
    "sample": {"max_new_tokens": 12, "batch_size": 4, "temperature": 0.0, "top_p": 1.0, "n_samples": 1, "seed": 0},
    "extract": {"positions": ["last_prompt", "step_end", "answer"], "mlp": True, "batch_size": 3, "shard_size": 3},
    "lens": {"batch_rows": 64},
    "figures": {"dpi": 40},
    "circuits": {
        # a random tiny model gets no step right: use the gold chain and keep every pair
        "pairs": {"seed": 0, "ontologies": ["fictional"], "per_subtask": 2, "min_kl": 0.0, "cot": "gold",
                  "require_correct": False},
        "patch": {"exact_pairs": 1, "top_k": 3, "screen": "eap-ig", "screen_steps": 1, "positions_last": 2, "head_batch": 3},
        "circuit": {"seed": 0, "sufficiency_k": [0, 2, 8], "random_draws": 3},
        "probe": {"seed": 0, "test_fraction": 0.5, "l2": 0.01},
    },
    "arith": {
        "seed": 0, "n_problems": 4, "min_steps": 1, "max_steps": 2, "ops": ["+", "-", "*", "/"], "n_shots": 2,
        "gsm8k_path": "",
        "neurons": {"top_k": 4, "n_candidates": 20, "max_new_tokens": 16, "batch_size": 4},
        "effects": {"variants": ["full", "formula_only"], "modes": ["zero"], "random_seeds": 2},
    },
    "experts": {
        # a 20-step MoE refuses nothing reliably: the behaviour class is the eliciting prompt set
        "models": ["tiny-moe"], "contrasts": ["events", "instructions"], "n_quality": 4, "seed": 0,
        "max_new_tokens": 4, "batch_size": 16, "tokens": "prompt", "classes": "prompt_set", "judge": "", "k": [1, 2],
        "random_seeds": 2,
    },
    "digits": {
        "seed": 0, "n_digits": [1, 2], "m_digits": [1, 3], "n_per_cell": 3, "n_shots": 2,
        "template": "{a} * {b} = {c}", "direct_template": "{a} * {b} mod 10 = {d}", "batch_size": 4,
        "estimator": "mc_dropout", "mc_dropout": {"p": 0.1, "samples": 2},
    },
}  # fmt: skip


def copy_workflow(dest: Path, tiny_model_src: Path, **overrides: object) -> Path:
    """The workflow files in ``dest``, configured for the tiny models (``overrides``
    replace top-level config sections)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("Snakefile", "workflow", "scripts", "src", "envs"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / item)
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg.update(TINY_CONFIG)
    cfg["models"] = {
        "tiny": {"source": "local", "path": str(tiny_model_src)},
        "tiny-moe": {"source": "train", "family": "olmoe", "layers": 2, "d_model": 32, "heads": 2, "kv_heads": 1,
                     "d_expert": 32, "experts": 4, "top_k": 2, "vocab_size": 300, "steps": 20, "batch_size": 8},
    }  # fmt: skip
    cfg.update(overrides)
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


@pytest.fixture(scope="session")
def make_workflow(tiny_model_src: Path) -> Callable[..., Path]:
    """``make_workflow(dest, **overrides)``: a configured copy of the workflow (see ``copy_workflow``)."""
    return lambda dest, **overrides: copy_workflow(dest, tiny_model_src, **overrides)


@pytest.fixture(scope="session")
def tiny_config() -> dict[str, Any]:
    return copy.deepcopy(TINY_CONFIG)


@pytest.fixture
def workflow_copy(tmp_path: Path, tiny_model_src: Path) -> Path:
    """The workflow files in a scratch directory, configured for the tiny model."""
    return copy_workflow(tmp_path, tiny_model_src)

"""The ``hub`` source, offline: a Hugging Face cache the test fills itself from a tiny
model (HF_HUB_OFFLINE=1, HF_HOME in a temp dir), with a moving branch, a pinned commit,
and the errors for a missing repo or revision."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "cotlens-test/tiny-llama"

SCRIPT = """
import json, sys
from cotlens.models.checks import check_prepared
from cotlens.errors import CotlensError
from cotlens.models.loading import load
from cotlens.models.prepare import prepare
from cotlens.models.registry import resolve
repo, rev, out = sys.argv[1:4]
try:
    man = prepare(resolve("h", {"h": {"source": "hub", "repo": repo, "revision": rev}}), out)
    report = check_prepared(out, out + ".checks.json", "cpu")
    lm = load(out, "float32", "cpu", "eager")
    print(json.dumps({"commit": man.get("commit"), "family": lm.adapter.family,
                      "checks": {k: v["ok"] for k, v in report["checks"].items()}}))
except CotlensError as e:
    print(json.dumps({"error": str(e)}))
"""


def fill_cache(hf_home: Path, model_dir: Path) -> None:
    """The cache layout huggingface_hub reads: blobs behind snapshots/<commit>, refs/main."""
    root = hf_home / "hub" / f"models--{REPO.replace('/', '--')}"
    snap = root / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    shutil.copytree(model_dir, snap, dirs_exist_ok=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)


def run(tmp_path: Path, repo: str, rev: str) -> dict[str, object]:
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = tmp_path / f"prepared-{abs(hash((repo, rev)))}"
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT, repo, rev, str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    if "error" in got:
        assert not out.exists()  # nothing half-written: the error comes before any file
    return got


def test_hub_source_from_a_prefilled_cache(tmp_path: Path, tiny_model_src: Path) -> None:
    fill_cache(tmp_path / "hf", tiny_model_src)
    moving = run(tmp_path, REPO, "main")
    assert moving["commit"] == COMMIT and moving["family"] == "llama"  # the branch resolved, and recorded
    assert all(moving["checks"].values())  # type: ignore[union-attr]
    pinned = run(tmp_path, REPO, COMMIT)
    assert pinned["commit"] == COMMIT
    missing_rev = run(tmp_path, REPO, "v9.9")
    assert f"model {REPO} at revision 'v9.9' is neither in the Hugging Face cache" in str(missing_rev["error"])
    assert f"hf download {REPO} --revision v9.9" in str(missing_rev["error"])
    missing_repo = run(tmp_path, "nobody/no-such-model", "main")
    assert "nobody/no-such-model at revision 'main' is neither in" in str(missing_repo["error"])

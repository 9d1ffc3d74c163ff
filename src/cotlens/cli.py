"""``cotlens`` command line: ``cotlens check-model PATH`` runs every self-check on a model.

PATH is a transformers model directory (or a prepared ``resources/models/<name>``
directory, or ``hub:REPO[@REVISION]``). It prints one line per check with the measured
difference and exits 1 if a check fails, so a user learns before any stage runs whether
cotlens reads the model exactly, and which studies it would refuse.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cotlens.checks import REQUIRED, run_checks, summary
from cotlens.errors import CotlensError


def _where(path: str) -> tuple[str | Path, dict[str, Any]]:
    if path.startswith("hub:"):
        repo, _, rev = path[4:].partition("@")
        return repo, {"revision": rev or "main"}
    p = Path(path)
    if (p / "manifest.json").is_file():
        from cotlens.models.loading import read_manifest, where_of

        return where_of(p, read_manifest(p))
    if not p.is_dir():
        raise CotlensError(f"no model directory at {p}", "give a transformers model directory, or hub:REPO[@REVISION]")
    from cotlens.models.prepare import check_local_dir

    check_local_dir(p)
    return p, {}


def check_model(path: str, device: str = "cpu", out: str | None = None) -> int:
    import time

    from cotlens.models.adapters import adapter_for
    from cotlens.models.loading import open_model
    from cotlens.patching import self_check

    where, kw = _where(path)
    model, _tok, _dev = open_model(where, kw, "float32", device, "eager")
    t0 = time.perf_counter()
    ad = adapter_for(model)
    checks = run_checks(model, ad, extra=(self_check,))
    secs = time.perf_counter() - t0
    print(f"{path}: {ad.family}, adapter {json.dumps({k: v for k, v in ad.describe().items() if v})}")
    for c in checks:
        print(
            f"  {c.name:14s} {'ok  ' if c.ok else 'FAIL'} max|diff| {c.diff:.3g} (reference {c.scale:.3g})  {c.detail}"
        )
    print(f"  {len(checks)} checks in {secs:.2f} s")
    if out:
        Path(out).write_text(json.dumps(summary(str(path), ad, checks, secs), indent=2, default=str))
    failed = [c for c in checks if not c.ok]
    for c in failed:
        scope = "every study" if c.name in REQUIRED else "the methods that need it"
        print(f"  -> {c.name} failed: cotlens refuses {scope} on this model")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cotlens", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    cm = sub.add_parser("check-model", help="run every self-check on a model directory")
    cm.add_argument("path", help="model directory, prepared model directory, or hub:REPO[@REVISION]")
    cm.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    cm.add_argument("--json", dest="out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    try:
        return check_model(args.path, args.device, args.out)
    except CotlensError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

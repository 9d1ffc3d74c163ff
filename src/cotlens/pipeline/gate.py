"""The gate of a stage whose method has its own self-check: run the check on the loaded
model before any work, refuse the stage on a failure. Only the model stages that need it
import this module (``pipeline.stage`` stays free of the model layers, so figure and
prompt stages do not depend on them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from cotlens.models.checks import check_length, check_tokens, run_one, tolerance
from cotlens.pipeline.stage import Params, Paths, refuse


def gate(
    stage: str,
    method: str,
    check: Any,
    lm: Any,
    outputs: Paths,
    tables: Mapping[str, Sequence[pa.Field] | pa.Schema],
    cfg: Params,
    model_dir: str,
    runtime: Params,
    length: int | None = None,
) -> bool:
    """Run a method's self-check (``check(handle, ids, tol=...)``, e.g. Study 2's
    :func:`cotlens.neurons.methods.check_ablation`) on the stage's loaded model ``lm``, before any
    work, on prompts of ``length`` tokens (default: past every attention window), at the
    tolerance of its dtype; log it. On a failure (or a crash) refuse the stage
    (:func:`refuse`) and return True. The check lives beside its method, so editing the
    method reruns only the stages that use it."""
    ids = check_tokens(lm.dims, t=length or check_length(lm.model)).to(lm.device)
    got = run_one(check, lm, ids, tol=tolerance(next(lm.model.parameters()).dtype))
    c = got[0] if isinstance(got, list) else got
    print(
        f"self-check {c.name}: {'ok' if c.ok else 'FAIL'} max|diff| {c.diff:.3g} (reference {c.scale:.3g}) {c.detail}"
    )
    if c.ok:
        return False
    why = (
        f"{method} is refused for model {lm.manifest.get('name')!r}: its self-check {c.name!r} failed "
        f"(max|diff| {c.diff:.3g} against {c.scale:.3g}: {c.detail})"
    )
    refuse(stage, " ".join(why.split()), outputs, tables, cfg, model_dir, runtime)
    return True

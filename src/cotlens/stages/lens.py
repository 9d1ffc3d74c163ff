"""Stage ``lens``: logit lens over every layer at the extracted positions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from cotlens import schemas
from cotlens.lens import ID_COLUMNS, lens_batch
from cotlens.models.loading import load
from cotlens.parquet import ShardWriter
from cotlens.stages.common import model_meta, set_threads


def run(
    activations: str | Path, model_dir: str | Path, out: str | Path, cfg: Mapping[str, Any],
    runtime: Mapping[str, Any], threads: int = 1,
) -> int:  # fmt: skip
    set_threads(threads)
    lm = load(model_dir, runtime["dtype"], runtime["device"], runtime.get("attn", "sdpa"), runtime.get("device_map"))
    data = ds.dataset(str(activations), format="parquet")
    w = ShardWriter(out, schemas.LENS, model_meta("lens", cfg, lm.manifest, lm.dtype))
    n = 0
    try:
        for batch in data.to_batches(
            columns=[*ID_COLUMNS, "resid"], batch_size=int(cfg.get("batch_rows", 2048)), use_threads=False
        ):
            tab = pa.Table.from_batches([batch])
            w.write(lens_batch(lm, tab))
            n += tab.num_rows
    except BaseException as e:
        w.abort(e)
        raise
    w.close()
    return n

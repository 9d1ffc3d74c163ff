"""Stage ``circuits_lens``: logit lens over every layer at the extracted positions."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds

from cotlens.circuits import tables
from cotlens.circuits.lens import ID_COLUMNS, lens_batch
from cotlens.io.logs import Progress
from cotlens.io.parquet import ShardWriter
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.stage import Params, Paths, model_meta


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    activations, out = inputs["activations"], outputs["lens"]
    lm = load_for_stage(inputs["model"], runtime, threads)
    data = ds.dataset(str(activations), format="parquet")
    n = 0
    batch_rows = int(params["batch_rows"])
    prog = Progress(-(-data.count_rows() // batch_rows), "batches")
    with prog, ShardWriter(out, tables.LENS, model_meta("circuits_lens", params, lm.manifest, lm.dtype)) as w:
        for batch in data.to_batches(columns=[*ID_COLUMNS, "resid"], batch_size=batch_rows, use_threads=False):
            tab = pa.Table.from_batches([batch])
            w.write(lens_batch(lm, tab))
            n += tab.num_rows
            prog.update(note=f"{n} rows")
    return n

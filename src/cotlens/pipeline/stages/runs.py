"""Stage ``compare_runs``: the figure JSONs of the runs in ``compare.runs`` as one table
(``headlines.parquet``) and one figure of the rift depth and last-digit confidence."""

from __future__ import annotations

from typing import Any

from cotlens.io.figures import save_json
from cotlens.io.parquet import RunMeta, write_table
from cotlens.pipeline.compare import collect, plot_headlines
from cotlens.pipeline.stage import Params, Paths


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> dict[str, Any]:
    t = collect(list(inputs.values()))
    write_table(t, outputs["table"], RunMeta.of("compare_runs", params, extra={"runs": params["runs"]}))
    numbers = plot_headlines(t, [outputs["png"], outputs["pdf"]], int(params["dpi"]))
    save_json([outputs["json"]], numbers)
    return numbers

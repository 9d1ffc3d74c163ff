"""Stage ``compare_runs``: the figure JSONs of the runs in ``compare.runs`` as one table
(``headlines.parquet``) and one figure of the rift depth and last-digit confidence."""

from __future__ import annotations

import json
from typing import Any

from cotlens.atomic import atomic_path
from cotlens.compare import collect, plot_headlines
from cotlens.parquet import RunMeta, config_hash, write_table
from cotlens.stages.common import Params, Paths


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> dict[str, Any]:
    t = collect(list(inputs.values()))
    write_table(t, outputs["table"], RunMeta("compare_runs", config_hash(dict(params)), extra={"runs": params["runs"]}))
    numbers = plot_headlines(t, [outputs["png"], outputs["pdf"]], int(params["dpi"]))
    with atomic_path(outputs["json"]) as tmp:
        tmp.write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n")
    return numbers

"""The console filter of `make run` / `cotlens run`: code inputs counted, not listed."""

from __future__ import annotations

import io

from cotlens.pipeline.console import compact, run_filter


def test_compact_counts_code_inputs_and_keeps_data() -> None:
    line = "    input: src/cotlens/a.py, src/cotlens/b.py, scripts/x.py, results/default/c/prompts.parquet, resources/models/m"
    assert compact(line) == "    input: results/default/c/prompts.parquet, resources/models/m (+3 code files)"
    assert compact("    input: src/a.py, src/b.py") == "    input: (+2 code files)"
    many = "    input: " + ", ".join(f"results/r/f{i}.json" for i in range(9))
    assert compact(many) == "    input: " + ", ".join(f"results/r/f{i}.json" for i in range(6)) + " (+3 more)"
    assert compact("Shell command: None") is None
    assert compact("    output: results/x.parquet\n") == "    output: results/x.parquet"
    assert compact("rule input: not a job line") == "rule input: not a job line"  # only the job block's field
    reason = "    reason: Input files updated by another job: " + ", ".join(f"f{i}.png" for i in range(40))
    assert (
        compact(reason)
        == "    reason: Input files updated by another job: f0.png, f1.png, f2.png, f3.png, f4.png, f5.png (+34 more)"
    )
    assert compact("    reason: Missing output files: a.parquet") == "    reason: Missing output files: a.parquet"


def test_filter_passes_everything_else_in_order() -> None:
    src = ["rule a:\n", "    input: src/x.py, data.csv\n", "Shell command: None\n", "1 of 3 steps (33%) done\n"]
    out = io.StringIO()
    run_filter(src, out)
    assert out.getvalue().splitlines() == ["rule a:", "    input: data.csv (+1 code files)", "1 of 3 steps (33%) done"]

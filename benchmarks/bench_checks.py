"""Self-checks: the architecture x check matrix with the measured differences, and the
time of the checks on prepared models.

    python benchmarks/bench_checks.py                     # every zoo family, perturbed weights
    python benchmarks/bench_checks.py resources/models/smollm2-135m ...   # prepared models too

For each model: every check's max|diff| / reference, ok or FAIL, and the seconds the
checks take (model loading excluded), in float32 with eager attention on the CPU, on
prompts longer than every attention window; then the refused families with their reason.
"""

from __future__ import annotations

import argparse
import time

import torch

from cotlens.errors import CotlensError
from cotlens.models import zoo
from cotlens.models.adapters import adapter_for
from cotlens.models.checks import NEEDED_BY, run_checks
from cotlens.pipeline.cli import method_checks


def row(name: str, model: torch.nn.Module) -> str:
    t0 = time.perf_counter()
    res = run_checks(model, adapter_for(model), extra=method_checks())
    secs = time.perf_counter() - t0
    cells = " | ".join(f"{'ok' if c.ok else 'FAIL'} {c.diff:.1e}/{c.scale:.1e}" for c in res)
    return f"| {name} | {cells} | {secs:.2f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prepared", nargs="*", help="prepared model directories (resources/models/<name>)")
    ap.add_argument("--no-zoo", action="store_true", help="skip the tiny-model matrix")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"| model | {' | '.join(NEEDED_BY)} | seconds |")
    print("|---" * (len(NEEDED_BY) + 2) + "|")
    if not args.no_zoo:
        for fam in zoo.ALL:
            print(row(fam, zoo.perturb(zoo.build(fam))), flush=True)
        print("\n| refused family | reason |\n|---|---|")
        for fam in zoo.REFUSED:
            try:
                run_checks(zoo.build(fam))
                print(f"| {fam} | NOT REFUSED |")
            except CotlensError as e:
                print(f"| {fam} | {str(e).splitlines()[0]} |")
    for path in args.prepared:
        from cotlens.models.loading import load

        lm = load(path, "float32", "cpu", "eager")
        print(row(f"{lm.manifest.get('name')} ({lm.adapter.family})", lm.model), flush=True)


if __name__ == "__main__":
    main()

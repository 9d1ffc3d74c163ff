"""Each model stage's measured time against ``cotlens plan``, and against a plain forward.

Reads each job's time from the last line of its log in a finished run
(``results/<run>/logs/<stage>/<model>.log``, ``cotlens.io.logs.job_time``) and prints, per stage and model: the measured seconds, the plan's estimate
for this machine and its error, the seconds of one plain forward over the same token
count (the plan's calibrated FLOP rate: what the stage would cost if it were nothing but
batched forwards of its tokens) and the ratio of the two.

    python benchmarks/bench_stages.py [--run default] [--config OVERLAY]... [--threads 1]

On a GPU machine, ``--gpu h100`` compares each stage with the plan's estimate for that GPU
class instead (``benchmarks/gpu_check.sh`` does it for the tiny DAG on CUDA), and
``--workdir`` reads a run made in another copy of the workflow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def measured(root: Path, run: str, stage: str, model: str) -> float | None:
    from cotlens.io.logs import job_time

    jt = job_time(root / "results" / run / "logs" / stage / f"{model}.log")
    return jt.wall_s if jt is not None and jt.finished else None


def main() -> int:
    from cotlens.pipeline import plan as P
    from cotlens.pipeline.cli import _merged_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=None, help="the run name (default: the config's)")
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gpu", default=None, help="compare with the plan for this GPU class (run on such a GPU)")
    ap.add_argument("--workdir", type=Path, default=ROOT, help="the workflow copy the run was made in")
    args = ap.parse_args()
    import os

    root = args.workdir.resolve()
    os.chdir(root)
    cfg = _merged_config(args.config)
    run = args.run or str(cfg.get("run", "default"))
    studies = set(cfg["studies"])
    names = list(cfg["active_models"]) if studies - {"experts"} else []
    names += list(cfg["experts"]["models"]) if "experts" in studies else []
    infos = {m: P.model_info(m, cfg, root) for m in dict.fromkeys(names)}
    dtype = str(cfg.get("runtime", {}).get("dtype", "float32"))
    rates = {m: P.calibration(i, dtype, args.threads, print) for m, i in infos.items()}
    rows = P.build(cfg, root, args.gpu or "h100", args.threads, rates=rates)
    where = f"plan ({args.gpu})" if args.gpu else "plan"
    print(f"\n| stage | model | measured | {where} | plan error | plain forward | measured / plain |")
    print("|---|---|---|---|---|---|---|")
    errs = []
    for r in rows:
        got = measured(root, run, r.stage, r.model)
        planned = r.gpu_s if args.gpu else r.cpu_s
        w, s = r.work, infos[r.model].shape
        rate = P.GPUS[args.gpu].get(dtype, P.GPUS[args.gpu]["float32"]) if args.gpu else rates[r.model]
        plain = (w.tokens + w.generated + 3 * w.backward) * s.flops(max(w.ctx, w.step_ctx)) / rate.flops_per_s
        if got is None:
            print(f"| {r.stage} | {r.model} | - | {planned:.0f} s | - | {plain:.1f} s | - |")
            continue
        err = (planned - got) / got
        errs.append(abs(err))
        ratio = f"{got / plain:.1f}" if plain > 0.05 else "-"
        print(
            f"| {r.stage} | {r.model} | {got:.1f} s | {planned:.1f} s | {100 * err:+.0f}% | {plain:.1f} s | {ratio} |"
        )
    if errs:
        inside = sum(e <= 0.3 for e in errs)
        print(
            f"\n{inside} of {len(errs)} stages within +-30%; median |error| {100 * sorted(errs)[len(errs) // 2]:.0f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

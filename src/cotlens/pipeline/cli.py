"""``cotlens``: the pipeline for people who do not know Snakemake.

- ``cotlens run [--config FILE]... [--model PATH] [-n] [--verbose] [-- SNAKEMAKE ARGS]``:
  runs the workflow (the default profile: local, 2 cores) with the console compacted
  (``cotlens.pipeline.console``), then writes the report. ``--model PATH`` adds a transformers
  model directory as a ``local`` registry entry (an overlay written to
  ``config/local-<name>.yaml``, run ``<name>``) and runs the studies on it.
- ``cotlens report [--config FILE]...``: the findings summary and the HTML report of what
  exists under ``results/<run>/`` (a partial run gets a partial report).
- ``cotlens plan [--config FILE]... [--gpu h100] [--threads 1]``: per stage and model of
  the configured DAG, the forwards, token-forwards, generated tokens and peak memory, the
  estimated time on this machine and on one GPU of a class, and the run's GPU-hours
  (:mod:`cotlens.pipeline.plan`), before anything runs.
- ``cotlens check-model PATH``: every self-check on a model, one line each with the
  measured difference; exits 1 if a check fails, so a user learns before any stage runs
  whether cotlens reads the model exactly, and which studies it would refuse. PATH is a
  transformers model directory, a prepared ``resources/models/<name>``, or
  ``hub:REPO[@REVISION]``.

Run from the checkout (the directory holding the Snakefile).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cotlens import paths
from cotlens.errors import CotlensError
from cotlens.io.atomic import write_text
from cotlens.models.checks import REQUIRED, run_checks, summary


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


def method_checks() -> tuple[Any, ...]:
    """The checks each method's stage runs on its loaded model before any work (they live
    beside their methods: editing one reruns only its stages), in the order check-model
    prints them after the prepare-time checks of ``cotlens.models.checks.PREPARE_CHECKS``."""
    from cotlens.circuits.patching import self_check
    from cotlens.digits.methods import check_readout_padded
    from cotlens.experts.methods import check_router
    from cotlens.neurons.methods import check_ablation

    return (check_readout_padded, check_ablation, check_router, self_check)


def check_model(path: str, device: str = "cpu", out: str | None = None) -> int:
    import time

    from cotlens.models.adapters import adapter_for
    from cotlens.models.loading import open_model

    where, kw = _where(path)
    model, _tok, _dev = open_model(where, kw, "float32", device, "eager")
    t0 = time.perf_counter()
    ad = adapter_for(model)
    checks = run_checks(model, ad, extra=method_checks())
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


PROFILE = "workflow/profiles/default"


def _checkout() -> Path:
    if not Path("Snakefile").is_file():
        raise CotlensError(f"no Snakefile in {Path.cwd()}", "run cotlens from the cotlens checkout")
    return Path.cwd()


MERGED = Path(".snakemake") / "cotlens"


def merged_overlay(configs: Sequence[str]) -> str:
    """The overlays merged in order (later keys win, mappings merged key by key: Snakemake's
    own ``update_config``) into one file, ``.snakemake/cotlens/overlay-<hash>.yaml``: Snakemake
    keeps only the last of repeated ``--configfile`` flags, which dropped ``--config X``
    beside ``--model``. One overlay is passed as it is (its errors name it)."""
    import hashlib

    import yaml

    if len(configs) == 1:
        return configs[0]
    body = yaml.safe_dump(_merge(configs), sort_keys=False)
    out = MERGED / f"overlay-{hashlib.sha256(body.encode()).hexdigest()[:12]}.yaml"
    head = "".join(f"#   {c}\n" for c in configs)
    write_text(out, f"# written by cotlens: these overlays merged in this order\n{head}" + body)
    return str(out)


def snakemake_command(configs: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """The Snakemake command line of ``make run``: the default profile and one overlay, the
    merge of ``configs`` (:func:`merged_overlay`)."""
    cmd = [sys.executable, "-m", "snakemake", "--workflow-profile", PROFILE]
    if configs:
        cmd += ["--configfile", merged_overlay(configs)]
    return cmd + list(extra)


def _slug(directory: Path) -> str:
    """A run name from a directory's name: its letters and digits (of any script, so
    ``模型`` and ``модель`` stay two names) joined by ``-``, lower case, at most 48."""
    import re
    import unicodedata

    text = unicodedata.normalize("NFC", directory.name).lower()
    return re.sub(r"\.{2,}", ".", re.sub(r"[^\w.-]+", "-", text)).strip("-._")[:48].strip("-._") or "local"


def _claimed_by(name: str, where: Path, configs: Sequence[str] = ()) -> str | None:
    """What a run/model name already stands for: a registry entry of config.yaml and the
    ``configs`` overlays, the path of its overlay (``config/local-<name>.yaml``) or of its
    prepared model (``resources/models/<name>``)."""
    import yaml

    files = [f for f in ["config.yaml", *configs] if Path(f).is_file()]
    if name in (_merge(files).get("models") or {}):
        return f"the registry model {name!r} of {', '.join(files)}"
    overlay = where / f"local-{name}.yaml"
    if overlay.is_file():
        data = yaml.safe_load(overlay.read_text(encoding="utf-8")) or {}
        entry = (data.get("models") or {}).get(name) if isinstance(data, dict) else None
        if isinstance(entry, dict) and entry.get("path"):
            return str(entry["path"])
    manifest = Path("resources") / "models" / name / "manifest.json"
    if manifest.is_file():
        try:
            man = json.loads(manifest.read_text())
        except ValueError:
            return None
        return str(man.get("path")) if man.get("source") == "local" else f"the registry model {name!r}"
    return None


def model_overlay(
    path: str, name: str | None = None, where: str | Path = "config", configs: Sequence[str] = ()
) -> Path:
    """A config overlay running the studies on the transformers model directory ``path``:
    registry entry ``<name>`` (``source: local``), ``active_models: [<name>]``, ``run: <name>``.

    The name (``--name``, else the directory's name) is checked before anything is written:
    one path component, and not a name that stands for another model directory already
    (another checkpoint's ``final``), which would share and overwrite its run."""
    import yaml

    from cotlens.models.prepare import check_local_dir
    from cotlens.pipeline.configcheck import check_name

    if name is not None:
        check_name("--name", name)
    try:
        p = Path(path).expanduser().resolve(strict=True)
    except (OSError, RuntimeError) as e:
        why = "is a symlink loop" if "loop" in str(e).lower() or isinstance(e, RuntimeError) else "does not exist"
        raise CotlensError(
            f"--model {path}: {why}", "give a transformers model directory (config.json, weights, tokenizer)"
        ) from None
    if not p.is_dir():
        raise CotlensError(
            f"--model {path}: no such directory",
            "give a transformers model directory (config.json, weights, tokenizer)",
        )
    check_local_dir(p)
    name = check_name("--name" if name else "the name of --model", name or _slug(p))
    where = Path(where)
    owner = _claimed_by(name, where, configs)
    if owner is not None and owner != str(p):
        raise CotlensError(
            f"--model {p}: the run and model name {name!r} already stand for {owner} "
            f"({where / f'local-{name}.yaml'}, results/{name}/, resources/models/{name}/); "
            "this model would overwrite them",
            f"give this model its own name: cotlens run --model {path} --name {name}-2",
        )
    overlay = {"run": name, "active_models": [name], "models": {name: {"source": "local", "path": str(p)}}}
    out = where / f"local-{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, f"# written by `cotlens run --model {path}`\n" + yaml.safe_dump(overlay, sort_keys=False))
    return out


def run(configs: Sequence[str], extra: Sequence[str], verbose: bool = False) -> int:
    """Snakemake, its console compacted unless ``verbose``, then the report."""
    import subprocess

    from cotlens.pipeline.configcheck import check_files
    from cotlens.pipeline.console import run_filter

    _checkout()
    check_files(["config.yaml", *configs])
    cmd = snakemake_command(configs, with_forced(extra, _resume_interrupted(configs)))
    if verbose:
        rc = subprocess.call(cmd)
    else:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
            assert proc.stdout is not None
            try:
                run_filter(proc.stdout, sys.stdout)
            except KeyboardInterrupt:  # Snakemake got it too: let it finish its cleanup
                proc.wait()
                raise
            rc = proc.wait()
    dry = any(a in ("-n", "--dry-run", "--dryrun") for a in extra)
    if rc == 0 and not dry:
        return report(configs, after_run=True)
    return rc


def with_forced(extra: Sequence[str], paths: Sequence[str]) -> list[str]:
    """``extra`` with ``paths`` forced: added to the user's own ``--forcerun``/``-R`` if
    there is one (Snakemake keeps only the last of a repeated flag), else as a new one."""
    out = list(extra)
    if not paths:
        return out
    for i, a in enumerate(out):
        if a in ("--forcerun", "-R"):
            return [*out[: i + 1], *paths, *out[i + 1 :]]
    return [*out, "--forcerun", *paths]


def _resume_interrupted(configs: Sequence[str]) -> list[str]:
    """``--forcerun`` for the outputs an interrupted stage of this run left missing
    (:func:`cotlens.io.atomic.interrupted`), which this configuration still makes: after a kill
    during ``-R rule``, Snakemake alone says "Nothing to be done" with them missing."""
    from cotlens.io.atomic import interrupted
    from cotlens.studies import STUDIES, study_models

    cfg = _merged_config(configs)
    results = Path(paths.run_dir(str(cfg.get("run", "default"))))
    todo = []
    for out in interrupted(results):
        parts = out.relative_to(results).parts
        study = parts[0] if parts else ""
        if study not in STUDIES or study not in cfg.get("studies", []):
            continue
        if len(parts) > 2 and parts[1] not in study_models(cfg, study):
            continue
        todo.append(str(out))
    if todo:
        print(f"resuming {len(todo)} output(s) an interrupted run left unfinished: {', '.join(todo)}")
    return todo


def report(configs: Sequence[str], after_run: bool = False) -> int:
    """The findings summary (results/<run>/summary.parquet and the landing page) and the
    HTML report of the figures that exist, written under a temp name and renamed. After a
    run that made no figure yet (``-- --until circuits_sample``), a note, not an error."""
    import os
    import subprocess

    from cotlens.io.parquet import RunMeta, to_table, write_table
    from cotlens.pipeline.configcheck import check_files, run_name
    from cotlens.pipeline.summary import SUMMARY, summarise, to_rst

    root = _checkout()
    files = ["config.yaml", *configs]
    check_files(files)
    name = run_name(files)
    results = Path(paths.run_dir(name))
    present = sorted(
        p.with_suffix("")
        for p in paths.figure_jsons(results)
        if all(p.with_suffix(e).is_file() for e in (".png", ".pdf", ".html"))
    )
    if not present and after_run:
        print(f"no figures under {results}/ yet, so no report: `cotlens report` writes it once some exist")
        return 0
    if not present:
        raise CotlensError(f"no figures under {results}/ (run {name!r})", "make some first: cotlens run (or make run)")
    expected = _expected_figures(configs)
    absent = [p for p in expected if not Path(p).is_file()]
    rows = summarise(results)
    cols = {f.name: [r[f.name] for r in rows] for f in SUMMARY}
    write_table(to_table(cols, SUMMARY), results / "summary.parquet", RunMeta.of("summary", {"run": name}))
    page = results / "report" / "summary.rst"
    page.parent.mkdir(parents=True, exist_ok=True)
    intro = (root / "workflow" / "report" / "workflow.rst").read_text()
    write_text(page, to_rst(rows, name, absent, intro))
    targets = [str(p.with_suffix(e)) for p in present for e in (".png", ".pdf", ".json", ".html")]
    compare = results / "compare" / "headlines.png"
    targets += [str(compare)] if compare.is_file() else []
    tmp = results / ".tmp-report.html"
    # PYTHONHASHSEED: Snakemake orders the report's rule graph by iterating sets of rules,
    # so two identical runs gave report.html files with the same entries in another order
    env = {**os.environ, "COTLENS_REPORT_TEXT": str(page.resolve()), "PYTHONHASHSEED": "0"}
    cmd = snakemake_command(configs, ["--report", str(tmp), *targets])
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        out, _ = proc.communicate()
    if proc.returncode != 0:
        sys.stdout.write(out)
        tmp.unlink(missing_ok=True)
        return proc.returncode
    tmp.replace(results / "report.html")
    verdicts = ", ".join(f"{sum(r['verdict'] == v for r in rows)} {v}" for v in sorted({r["verdict"] for r in rows}))
    print(f"report: {results / 'report.html'} ({len(present)} figures, {len(rows)} findings: {verdicts})")
    if absent:
        print(f"  partial: {len(absent)} figure(s) not made yet; `cotlens run` makes them")
    return 0


def _merge(files: Sequence[str]) -> dict[str, Any]:
    """The YAML files merged in order as Snakemake merges config files (``update_config``:
    later keys win, mappings merged key by key)."""
    import yaml
    from snakemake.utils import update_config

    cfg: dict[str, Any] = {}
    for f in files:
        update_config(cfg, yaml.safe_load(Path(f).read_text(encoding="utf-8")) or {})
    return cfg


def _merged_config(configs: Sequence[str]) -> dict[str, Any]:
    """config.yaml and the overlays, merged."""
    return _merge(["config.yaml", *configs])


def _expected_figures(configs: Sequence[str]) -> list[str]:
    """The figure JSONs the configuration's `all` makes (``figure_paths``)."""
    from cotlens.studies import figure_paths

    return figure_paths({"run": "default", **_merged_config(configs)}, ("json",))


def plan(configs: Sequence[str], gpu: str, threads: int, model: str | None = None, profile: str | None = None) -> int:
    """``cotlens plan``: the plan of the configured run (:mod:`cotlens.pipeline.plan`), printed;
    ``model`` replaces the config's active models; ``profile``: a SLURM profile whose model
    stages' runtime and memory are rewritten from the plan (``pipeline.plan.slurm_profile``)."""
    from cotlens.pipeline import plan as P
    from cotlens.pipeline.configcheck import check_files

    _checkout()
    check_files(["config.yaml", *configs])
    cfg = _merged_config(configs)
    if model is not None:
        if model not in cfg["models"]:
            raise CotlensError(
                f"--model {model!r} is not in the models registry", f"use one of {sorted(cfg['models'])}"
            )
        cfg["active_models"] = [model]
    base = Path(profile) if profile and Path(profile).is_file() else Path("workflow/profiles/slurm/config.yaml")
    text = base.read_text(encoding="utf-8") if profile else ""
    if profile:
        P.slurm_profile(text, [], "")  # its markers checked before the plan runs
    rows = P.build(cfg, Path.cwd(), gpu, threads)
    print(P.render(rows, gpu, threads))
    if profile:
        how = "".join(f" --config {c}" for c in configs) + (f" --model {model}" if model else "") + f" --gpu {gpu}"
        write_text(Path(profile), P.slurm_profile(text, rows, how))
        print(f"wrote {profile}: the runtime and memory of {len({r.stage for r in rows})} rules from the plan")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cotlens", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rn = sub.add_parser("run", help="run the studies (Snakemake, default profile), then write the report")
    rn.add_argument(
        "--config", action="append", default=[], help="a config overlay (repeatable), e.g. config/paper.yaml"
    )
    rn.add_argument("--model", default=None, help="a transformers model directory to run the studies on")
    rn.add_argument("--name", default=None, help="with --model: its registry name and run name")
    rn.add_argument("-n", "--dry-run", action="store_true", help="show what would run, run nothing")
    rn.add_argument("--verbose", action="store_true", help="Snakemake's full console (every code input)")
    rn.add_argument("snakemake_args", nargs="*", help="after --: passed to Snakemake (e.g. -- --cores 8)")
    rp = sub.add_parser("report", help="the findings summary and HTML report of what exists")
    rp.add_argument("--config", action="append", default=[], help="the config overlays of the run")
    cm = sub.add_parser("check-model", help="run every self-check on a model directory")
    cm.add_argument("path", help="model directory, prepared model directory, or hub:REPO[@REVISION]")
    cm.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    cm.add_argument("--json", dest="out", default=None, help="also write the results as JSON here")
    pl = sub.add_parser("plan", help="the cost of the configured run, per stage and model, before it runs")
    pl.add_argument("--config", action="append", default=[], help="a config overlay (repeatable)")
    pl.add_argument("--gpu", default="h100", help="the GPU class to estimate for: h100, a100, l40s")
    pl.add_argument("--threads", type=int, default=1, help="threads per stage on this machine (make run: 1)")
    pl.add_argument("--model", default=None, help="plan for this registry model instead of the active models")
    pl.add_argument(
        "--slurm-profile",
        default=None,
        help="write the plan's runtime and memory per rule into this SLURM profile (a copy of workflow/profiles/slurm/config.yaml)",
    )
    args = ap.parse_args(argv)
    try:
        if args.cmd == "plan":
            return plan(list(args.config), args.gpu, args.threads, args.model, args.slurm_profile)
        if args.cmd == "run":
            configs = list(args.config)
            from cotlens.pipeline.configcheck import check_files

            _checkout()
            check_files(["config.yaml", *configs])  # before anything is written
            if args.model:
                configs.append(str(model_overlay(args.model, args.name, configs=configs)))
                print(f"model {args.model}: registry entry and run in {configs[-1]}")
            extra = [*(["-n"] if args.dry_run else []), *args.snakemake_args]
            return run(configs, extra, args.verbose)
        if args.cmd == "report":
            return report(list(args.config))
        return check_model(args.path, args.device, args.out)
    except CotlensError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the running stages were stopped; nothing half written looks complete. "
            "`cotlens run` again resumes (finished shards are kept; add -- --rerun-incomplete if Snakemake asks)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Self-checks: every read-out cotlens makes is proven against the model itself.

Run when a model is prepared (``prepare_model``, ``cotlens check-model PATH``), in float32
on two short random prompts, each with the measured difference in the log and the
manifest:

| check | compares | needed by |
|---|---|---|
| ``resid_capture`` | captured block outputs vs ``output_hidden_states`` | every study |
| ``lens`` | :func:`readout` of the last block output (and of ``last_hidden_state``) vs the model's logits | every study |
| ``hook_shapes`` | hook sites carry [batch, position, ...]; an identity edit changes no logit | every study |
| ``decomposition`` | block input + per-head writes + neuron writes + constants vs block output | DLA (heads), neuron projection and scoring |
| ``patching`` | the patching engine (block replay through the cache argument) vs one full forward per head | activation patching |

The first four run when the model is prepared. A check every study needs stops
preparation with one error naming the model, the check and the difference; a failed
``decomposition`` is recorded and the stages that need it refuse the model
(:func:`require`) before loading it. ``patching`` is :func:`cotlens.patching.self_check`:
the patch stage runs it on its loaded model before any pair (it lives there so that an
edit of the patching engine reruns only the stages that use it), and ``cotlens
check-model`` runs all five.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from cotlens.errors import CotlensError
from cotlens.hooks import BlockCalls, Capture, edit_inputs, output_hooks
from cotlens.models.adapters import (
    Adapter,
    Dims,
    Handle,
    ModelHandle,
    adapter_for,
    dims,
    final_norm,
    get,
    layers,
    readout,
)
from cotlens.writes import constant, head_writes, out_columns, token_scale

TOL = 1e-4  # relative to the reference's largest magnitude, float32
REQUIRED = ("resid_capture", "lens", "hook_shapes")
NEEDED_BY = {
    "resid_capture": "every study",
    "lens": "every study",
    "hook_shapes": "every study",
    "decomposition": "direct logit attribution (heads) and neuron projection/scoring (neurons)",
    "patching": "activation patching (patch)",
}


@dataclass
class Check:
    name: str
    ok: bool
    diff: float  # largest absolute difference
    scale: float  # largest magnitude of the reference: diff / scale is what TOL bounds
    detail: str = ""

    @property
    def rel(self) -> float:
        return self.diff / max(self.scale, 1e-12)


def _cmp(name: str, got: torch.Tensor, want: torch.Tensor, detail: str = "", tol: float = TOL) -> Check:
    diff = float((got.double() - want.double()).abs().max())
    scale = float(want.double().abs().max())
    ok = diff <= tol * max(scale, 1.0)
    return Check(name, ok, diff, scale, detail)


def tolerance(dtype: torch.dtype) -> float:
    """TOL in float32; half precision rounds differently along two equal paths."""
    return TOL if dtype == torch.float32 else 3e-2


def prompts(d: Dims, n: int = 2, t: int = 9) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(1, max(d.vocab - 1, 2), (n, t), generator=g)


@torch.no_grad()
def check_resid_and_lens(mh: ModelHandle, ids: torch.Tensor) -> list[Check]:
    model, ad, d = mh.model, mh.adapter, mh.dims
    with Capture(model, ad, ["resid"]) as cap:
        out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    hs = out.hidden_states
    if hs is None or len(hs) != d.n_layers + 1:
        n_hs = None if hs is None else len(hs)
        return [Check("resid_capture", False, float("nan"), 0.0, f"{n_hs} hidden states for {d.n_layers} blocks")]
    blocks_out = [cast(torch.Tensor, t) for t in cap.out["resid"]]
    got = torch.stack([blocks_out[i] for i in range(d.n_layers - 1)] + [readout_norm(model, ad, cap)])
    want = torch.stack(list(hs[1:]))
    resid = _cmp("resid_capture", got, want, "block outputs (last one final-normed) vs output_hidden_states")
    lens = _cmp("lens", readout(model, ad, blocks_out[-1]), out.logits, "readout(last block output) vs logits")
    normed = _cmp("lens", readout(model, ad, hs[-1], normed=True), out.logits)
    if normed.diff > lens.diff:
        lens = Check("lens", lens.ok and normed.ok, normed.diff, normed.scale, "readout(last_hidden_state) vs logits")
    return [resid, lens]


def readout_norm(model: nn.Module, ad: Adapter, cap: Capture) -> torch.Tensor:
    last = cap.out["resid"][-1]
    assert last is not None
    return final_norm(model, ad)(last)


@torch.no_grad()
def check_hook_shapes(mh: ModelHandle, ids: torch.Tensor) -> Check:
    model, ad, d = mh.model, mh.adapter, mh.dims
    sites = ["attn_heads"] + ([] if ad.router else ["mlp"])
    with Capture(model, ad, sites) as cap:
        ref = model(input_ids=ids, use_cache=False).logits
    want = {"attn_heads": d.n_heads * d.head_dim, "mlp": d.d_mlp}
    for s in sites:
        shapes = {tuple(t.shape) for t in cap.out[s] if t is not None}
        if shapes != {(*ids.shape, want[s])}:
            return Check(
                "hook_shapes", False, float("nan"), 0.0, f"{s}: got {sorted(shapes)}, want {(*ids.shape, want[s])}"
            )
    edits = {li: (lambda x: x.clone()) for li in range(d.n_layers)}
    with edit_inputs(model, ad, "attn_heads", edits):
        if not ad.router:
            with edit_inputs(model, ad, "mlp", edits):
                got = model(input_ids=ids, use_cache=False).logits
        else:
            got = model(input_ids=ids, use_cache=False).logits
    return _cmp("hook_shapes", got, ref, f"{', '.join(sites)} are [batch, position, dim]; identity edits")


@torch.no_grad()
def check_decomposition(mh: ModelHandle, ids: torch.Tensor) -> Check:
    """Block output == input + sum of head writes + attention constant + FFN write, per block.

    Dense FFNs are summed neuron by neuron through :func:`cotlens.writes.out_columns`; a
    MoE block's output is taken whole (its experts are not neurons)."""
    model, ad, d = mh.model, mh.adapter, mh.dims
    blocks = layers(model, ad)
    ffn_out: dict[int, torch.Tensor] = {}
    keep_ffn = [
        (
            get(b, ad.ffn_module),
            lambda _m, _a, o, i=i: ffn_out.__setitem__(i, (o if isinstance(o, torch.Tensor) else o[0]).clone()),
        )
        for i, b in enumerate(blocks)
    ]
    sites = ["resid", "attn_heads"] + ([] if ad.router else ["mlp"])
    with output_hooks(keep_ffn), BlockCalls(model, ad) as calls, Capture(model, ad, sites) as cap:
        model(input_ids=ids, use_cache=False)
    worst, scale, ok = 0.0, 0.0, True

    def compare(got: torch.Tensor, want: torch.Tensor) -> None:
        nonlocal worst, scale, ok
        diff = float((got.double() - want.double()).abs().max())
        ref = float(want.double().abs().max())
        ok = ok and diff <= TOL * max(ref, 1.0)  # each part against its own size: no error hides in a larger one
        if diff / max(ref, 1.0) >= worst / max(scale, 1.0):
            worst, scale = diff, ref

    for li, block in enumerate(blocks):
        z, out, x = cap.out["attn_heads"][li], cap.out["resid"][li], calls.inputs[li]
        assert z is not None and out is not None
        a = get(block, ad.attn_out)(z)
        f = ffn_out[li].reshape(out.shape)
        pa = None if ad.post_attn_norm is None else get(block, ad.post_attn_norm)
        pf = None if ad.post_ffn_norm is None else get(block, ad.post_ffn_norm)
        attn_write = (a if pa is None else pa(a)) * ad.residual_scale
        ffn_write = (f if pf is None else pf(f)) * ad.residual_scale
        compare(x + attn_write + ffn_write, out)  # the block is these two writes and nothing else
        compare(head_writes(model, ad, d, li, z).sum(-2) + constant(model, ad, li, "attn", a), attn_write)
        if ad.router is None:
            n = cap.out["mlp"][li]
            assert n is not None
            neurons = (n @ out_columns(model, ad, li)) * token_scale(model, ad, li, f)
            compare(neurons + constant(model, ad, li, "ffn", f), ffn_write)
    what = "block = input + attention + FFN writes; heads sum to the attention write" + (
        "" if ad.router else ", neurons to the FFN write"
    )
    return Check("decomposition", ok, worst, scale, what)


CheckFn = Callable[[ModelHandle, torch.Tensor], "Check | list[Check]"]
PREPARE_CHECKS: tuple[CheckFn, ...] = (check_resid_and_lens, check_hook_shapes, check_decomposition)


def run_checks(
    model: nn.Module, ad: Adapter | None = None, d: Dims | None = None, extra: Sequence[CheckFn] = ()
) -> list[Check]:
    """The checks of ``PREPARE_CHECKS`` (+ ``extra``, e.g. :func:`cotlens.patching.self_check`)
    on ``model`` (load it in float32 with eager attention)."""
    ad = ad or adapter_for(model)
    mh = Handle(model, ad, d or dims(model, ad))
    dev = next(model.parameters()).device
    ids = prompts(mh.dims).to(dev)
    out: list[Check] = []
    for fn in (*PREPARE_CHECKS, *extra):
        try:
            got = fn(mh, ids)
        except CotlensError:
            raise
        except Exception as e:  # a check that crashes is a failed check, named
            name = fn.__name__.removeprefix("check_").replace("self_check", "patching")
            got = Check(
                "resid_capture" if name == "resid_and_lens" else name,
                False,
                float("nan"),
                0.0,
                f"raised {type(e).__name__}: {e}",
            )
        out += got if isinstance(got, list) else [got]
    return out


def summary(model_name: str, ad: Adapter, checks: list[Check], seconds: float) -> dict[str, Any]:
    return {
        "adapter": ad.describe(),
        "checks": {c.name: {**asdict(c), "rel": c.rel, "needed_by": NEEDED_BY[c.name]} for c in checks},
        "check_seconds": round(seconds, 2),
        "model": model_name,
    }


def verify(model: nn.Module, name: str, log: Any = print) -> dict[str, Any]:
    """Run every check, log each, stop on a failed check every study needs."""
    t0 = time.perf_counter()
    ad = adapter_for(model)
    checks = run_checks(model, ad)
    secs = time.perf_counter() - t0
    for c in checks:
        log(
            f"check {c.name:14s} {'ok  ' if c.ok else 'FAIL'} max|diff| {c.diff:.3g} (reference {c.scale:.3g}) {c.detail}"
        )
    log(f"self-checks took {secs:.2f} s")
    for c in checks:
        if c.name in REQUIRED:
            enforce(c, name, ad)
    return summary(name, ad, checks, secs)


def enforce(c: Check, name: str, ad: Adapter) -> None:
    """One clear error for a failed check: the model, the check, the measured difference."""
    if not c.ok:
        raise CotlensError(
            f"model {name!r} ({ad.family}) fails the self-check {c.name!r}: max|diff| {c.diff:.3g} "
            f"against a reference of {c.scale:.3g} ({c.detail}); needed by {NEEDED_BY[c.name]}",
            "cotlens cannot read this model exactly; add an OVERRIDES row in cotlens.models.adapters or report it",
        )


def require(report: dict[str, Any] | str | Path | None, check: str, method: str) -> None:
    """Refuse ``method`` when the model's check report (``check_model``) says ``check`` failed."""
    if report is None:
        return
    rep = report if isinstance(report, dict) else read_report(report)
    got = rep.get("checks", {}).get(check)
    if got is not None and not got["ok"]:
        raise CotlensError(
            f"{method} is refused for model {rep.get('model')!r}: its self-check {check!r} failed "
            f"(max|diff| {got['diff']:.3g} against {got['scale']:.3g}: {got['detail']})",
            "the numbers would be wrong on this model; run the other studies, or add an adapter override",
        )


def check_prepared(model_dir: str | Path, out: str | Path, device: str = "auto") -> dict[str, Any]:
    """The ``check_model`` stage: load a prepared model in float32 with eager attention,
    run the checks, log them and write the report atomically (none if a check every study
    needs fails)."""
    from cotlens.atomic import atomic_path
    from cotlens.models.loading import load

    lm = load(model_dir, "float32", device, "eager")
    report = verify(lm.model, str(lm.manifest.get("name", Path(model_dir).name)))
    report.pop("check_seconds")  # in the log and the benchmark file: the report stays byte-reproducible
    report["manifest"] = {k: lm.manifest.get(k) for k in ("source", "revision", "commit", "sha256", "path", "repo")}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    return report


def read_report(path: str | Path) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))

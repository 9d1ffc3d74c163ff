"""Self-checks: every read-out cotlens makes is proven against the model itself.

Run when a model is prepared (``models_prepare``, ``cotlens check-model PATH``), in float32
on two random prompts longer than every attention window of the model
(:func:`check_length`), each with the measured difference in the log and the manifest:

| check | compares | needed by |
|---|---|---|
| ``resid_capture`` | captured block outputs vs ``output_hidden_states`` | every study |
| ``lens`` | :func:`readout` of the last block output (and of ``last_hidden_state``) vs the model's logits | every study |
| ``hook_shapes`` | hook sites carry [batch, position, ...]; an identity edit changes no logit | every study |
| ``decomposition`` | block input + per-head writes + neuron writes + constants vs block output | DLA (heads), neuron projection and scoring |
| ``dla`` | every part's direct logits (embedding, heads, constants, FFNs) + the logits no part owns vs the model's logits | DLA (heads) |
| ``attention`` | ``output_attentions``: distributions, causal, zero beyond each sliding block's window | attention to the answer (heads) |
| ``readout_padded`` | logits read at positions of right-padded rows, and after cached prompts (``PrefixCache``), vs each row alone | digit confidence |
| ``ablation`` | noise and zero ablation through hooks vs the forward with edited down-projection weights | neuron ablation |
| ``router`` | the MoE routers' (logits, top-k weights, top-k index) contract; every expert off at the router vs the experts' output zeroed | expert maps and switching |
| ``patching`` | the patching engine (block replay through the cache argument) vs one full forward per head | activation patching |

The first six (``PREPARE_CHECKS``) run when the model is prepared. A check every study
needs stops preparation with one error naming the model, the check and the difference; a
failed ``decomposition``, ``dla`` or ``attention`` is recorded and the stages that need it
refuse the model (:func:`refused_by`) before loading it. The last four live beside their
methods (:func:`cotlens.digits.methods.check_readout_padded`, :func:`cotlens.neurons.methods.check_ablation`,
:func:`cotlens.experts.methods.check_router`, :func:`cotlens.circuits.patching.self_check`): the stages that
use them run them on their loaded model before any work (``pipeline.gate.gate``), so an
edit of a method reruns only its stages; ``cotlens check-model`` runs all ten.
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

from cotlens.core.contributions import constant, direct_logits, head_writes, logit_constant, out_columns, token_scale
from cotlens.core.hooks import BlockCalls, Capture, edit_inputs, output_hooks
from cotlens.errors import CotlensError
from cotlens.models.adapters import (
    Adapted,
    AdaptedModel,
    Adapter,
    Dims,
    adapter_for,
    capped,
    context_of,
    dims,
    final_norm,
    get,
    layers,
    readout,
    windows,
    windows_of,
)

TOL = 1e-4  # relative to the reference's largest magnitude, float32
REQUIRED = ("resid_capture", "lens", "hook_shapes")
# the checks of PREPARE_CHECKS, in the order of the report; the method checks follow in NEEDED_BY
PREPARED = (*REQUIRED, "decomposition", "dla", "attention")
NEEDED_BY = {
    "resid_capture": "every study",
    "lens": "every study",
    "hook_shapes": "every study",
    "decomposition": "direct logit attribution (heads) and neuron projection/scoring (neurons)",
    "dla": "direct logit attribution (heads)",
    "attention": "attention to the answer token (the heads stage)",
    "readout_padded": "digit confidence (the digits stage reads right-padded rows)",
    "ablation": "neuron ablation (noise, zero: the neuron effects stage)",
    "router": "expert maps and switching (Study 4)",
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


MIN_LENGTH = 9  # tokens: the patching check's prompts differ from position 4 and patch position 6
MAX_LENGTH = 1024  # tokens: check-model's cap on a CPU; a stage checks at its own prompts' length


def check_tokens(d: Dims, n: int = 2, t: int = MIN_LENGTH) -> torch.Tensor:
    """``n`` rows of ``t`` random check tokens (the self-checks' inputs; not prompts)."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(1, max(d.vocab - 1, 2), (n, max(int(t), MIN_LENGTH)), generator=g)


def check_length(model: nn.Module, cap: int = MAX_LENGTH) -> int:
    """Tokens the checks run on: longer than every attention window of the model (so a
    window the read-outs or the patching engine get wrong shows), within its context and
    ``cap``. A window beyond ``cap`` is checked by the stage that uses it, at its prompts'
    length (:func:`cotlens.circuits.patching.self_check` in the patch stage)."""
    return length_for(getattr(model, "config", None), cap)


def length_for(cfg: Any, cap: int = MAX_LENGTH) -> int:
    """:func:`check_length` from a config (the object, or the dict of a config.json)."""
    ws = windows_of(cfg)
    want = MIN_LENGTH if not ws else ws[-1] + 4
    ctx = context_of(cfg)
    return max(MIN_LENGTH, min(want, cap, ctx if ctx is not None else want))


@torch.no_grad()
def check_resid_and_lens(mh: AdaptedModel, ids: torch.Tensor) -> list[Check]:
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
def check_hook_shapes(mh: AdaptedModel, ids: torch.Tensor) -> Check:
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


def _ffn_outputs(model: nn.Module, ad: Adapter, store: dict[int, torch.Tensor]) -> Any:
    """Forward hooks keeping each block's whole FFN output in ``store`` (by layer)."""

    def keep(i: int) -> Callable[[nn.Module, Any, Any], None]:
        def fn(_m: nn.Module, _a: Any, o: Any) -> None:
            store[i] = (o if isinstance(o, torch.Tensor) else o[0]).clone()

        return fn

    return output_hooks((get(b, ad.ffn_module), keep(i)) for i, b in enumerate(layers(model, ad)))


@torch.no_grad()
def check_decomposition(mh: AdaptedModel, ids: torch.Tensor) -> Check:
    """Block output == input + sum of head writes + attention constant + FFN write, per block.

    Dense FFNs are summed neuron by neuron through :func:`cotlens.core.contributions.out_columns`; a
    MoE block's output is taken whole (its experts are not neurons)."""
    model, ad, d = mh.model, mh.adapter, mh.dims
    blocks = layers(model, ad)
    ffn_out: dict[int, torch.Tensor] = {}
    sites = ["resid", "attn_heads"] + ([] if ad.router else ["mlp"])
    with _ffn_outputs(model, ad, ffn_out), BlockCalls(model, ad) as calls, Capture(model, ad, sites) as cap:
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


@torch.no_grad()
def check_dla(mh: AdaptedModel, ids: torch.Tensor) -> Check:
    """Direct logit attribution: at the last position, the embedding, every head's write, each
    attention constant and each FFN write, put through :func:`cotlens.core.contributions.direct_logits`
    (what the heads stage reads), plus :func:`cotlens.core.contributions.logit_constant`, sum to the
    model's own logits (the soft-cap applied to the sum). A bias counted once per part (the
    unembedding's, the final LayerNorm's) adds (parts - 1) times itself and fails."""
    model, ad, d = mh.model, mh.adapter, mh.dims
    ffn: dict[int, torch.Tensor] = {}
    with (
        _ffn_outputs(model, ad, ffn),
        BlockCalls(model, ad) as calls,
        Capture(model, ad, ["resid", "attn_heads"]) as cap,
    ):
        logits = model(input_ids=ids, use_cache=False).logits[:, -1]
    final = cast(torch.Tensor, cap.out["resid"][-1])[:, -1]  # [B, d]: the last block's output
    parts = [calls.inputs[0][:, -1, None]]  # the embedding (block 0's input)
    for li, block in enumerate(layers(model, ad)):
        z = cast(torch.Tensor, cap.out["attn_heads"][li])[:, -1]
        a = get(block, ad.attn_out)(z)
        pf = None if ad.post_ffn_norm is None else get(block, ad.post_ffn_norm)
        f = ffn[li].reshape(*ids.shape, -1)[:, -1]
        parts += [head_writes(model, ad, d, li, z), constant(model, ad, li, "attn", a)[:, None]]
        parts.append(((f if pf is None else pf(f)) * ad.residual_scale)[:, None])
    stacked = torch.cat(parts, dim=1)  # [B, K, d]
    got = capped(ad, direct_logits(model, ad, final, stacked).sum(1) + logit_constant(model, ad, final))
    what = f"{stacked.shape[1]} parts (embedding, {d.n_layers * d.n_heads} heads, attention constants, FFNs) vs logits"
    return _cmp("dla", got, logits, what)


@torch.no_grad()
def check_attention(mh: AdaptedModel, ids: torch.Tensor) -> Check:
    """The attention weights the heads stage reads (``output_attentions`` of the decoder
    stack, eager attention): one [batch, heads, T, T] map per block, each row a distribution
    (at most 1 where the family has attention sinks), nothing above the diagonal, and nothing
    beyond the window of a sliding/chunked block (``config.layer_types``)."""
    model, ad, d = mh.model, mh.adapter, mh.dims
    out = get(model, ad.base)(input_ids=ids, use_cache=False, output_attentions=True)
    att = out.attentions
    if att is None or len(att) != d.n_layers or any(a is None for a in att):
        return Check("attention", False, float("nan"), 0.0, "no attention weights (load with eager attention)")
    t = ids.shape[1]
    cfg: Any = getattr(model.config, "text_config", None) or model.config
    window = windows(model)
    kinds = list(getattr(cfg, "layer_types", None) or [])
    if not kinds and getattr(cfg, "attention_layers", None):  # GPT-Neo: global / local
        kinds = ["sliding_attention" if k == "local" else "full_attention" for k in cfg.attention_layers]
    if not kinds:  # no per-layer kinds: the window is not asserted (Moshi names one it never applies)
        kinds = ["full_attention"] * d.n_layers
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    worst, bad = 0.0, []
    blocks = layers(model, ad)
    with_sinks = [any("sink" in n for n, _ in b.named_parameters()) for b in blocks]
    for li, a in enumerate(att):
        sinks = with_sinks[li]
        if tuple(a.shape) != (ids.shape[0], d.n_heads, t, t):
            return Check("attention", False, float("nan"), 0.0, f"block {li}: weights {tuple(a.shape)}")
        allowed = j <= i
        if kinds[li] == "sliding_attention" and window:
            allowed = allowed & (i - j < window[0])
        elif kinds[li] == "chunked_attention" and window:
            allowed = allowed & (i // window[0] == j // window[0])
        outside = float(a[..., ~allowed.to(a.device)].abs().max()) if (~allowed).any() else 0.0
        rows = a.double().sum(-1)
        off = float((rows - 1).clamp(min=0).max()) if sinks else float((rows - 1).abs().max())
        neg = float((-a).clamp(min=0).max())
        worst = max(worst, outside, off, neg)
        if max(outside, off, neg) > TOL:
            bad.append(li)
    what = f"{d.n_layers} maps [batch, heads, {t}, {t}]: rows sum to 1 (<= 1 in {sum(with_sinks)} block(s) with sinks), causal"
    windowed = sum(k in ("sliding_attention", "chunked_attention") for k in kinds)
    what += f", window {window[0]} on {windowed} sliding/chunked block(s)" if window else ""
    return Check("attention", not bad, worst, 1.0, what + (f"; wrong in blocks {bad}" if bad else ""))


CheckFn = Callable[..., "Check | list[Check]"]
PREPARE_CHECKS: tuple[CheckFn, ...] = (
    check_resid_and_lens,
    check_hook_shapes,
    check_decomposition,
    check_dla,
    check_attention,
)


def run_one(fn: CheckFn, mh: AdaptedModel, ids: torch.Tensor, **kw: Any) -> Check | list[Check]:
    """One check; a check that crashes is a failed check, named, with the error."""
    try:
        return fn(mh, ids, **kw)
    except CotlensError:
        raise
    except Exception as e:
        name = fn.__name__.removeprefix("check_").replace("self_check", "patching")
        name = "resid_capture" if name == "resid_and_lens" else name
        return Check(name, False, float("nan"), 0.0, f"raised {type(e).__name__}: {' '.join(str(e).split())}")


def run_checks(
    model: nn.Module, ad: Adapter | None = None, d: Dims | None = None, extra: Sequence[CheckFn] = ()
) -> list[Check]:
    """The checks of ``PREPARE_CHECKS`` (+ ``extra``, e.g. :func:`cotlens.circuits.patching.self_check`)
    on ``model`` (load it in float32 with eager attention)."""
    ad = ad or adapter_for(model)
    mh = Adapted(model, ad, d or dims(model, ad))
    dev = next(model.parameters()).device
    ids = check_tokens(mh.dims, t=check_length(model)).to(dev)
    out: list[Check] = []
    for fn in (*PREPARE_CHECKS, *extra):
        got = run_one(fn, mh, ids)
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
    ws, t = windows(model), check_length(model)
    log(f"checks ran on {t} tokens" + (f"; attention windows {ws}" if ws else "; no attention window"))
    if ws and ws[-1] >= t:
        log(f"  the window {ws[-1]} is longer than {t}: the patch stage checks patching at its prompts' length")
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


def refused_by(report: dict[str, Any] | str | Path | None, checks: Sequence[str], method: str) -> str | None:
    """Why ``method`` is refused on the model whose check report (``check_model``) says one
    of ``checks`` failed, in one line; None when they all passed (or there is no report)."""
    if report is None:
        return None
    rep = report if isinstance(report, dict) else read_report(report)
    for check in checks:
        got = rep.get("checks", {}).get(check)
        if got is not None and not got["ok"]:
            return (
                f"{method} is refused for model {rep.get('model')!r}: its self-check {check!r} failed "
                f"(max|diff| {got['diff']:.3g} against {got['scale']:.3g}: {got['detail']})"
            )
    return None


def require(report: dict[str, Any] | str | Path | None, check: str, method: str) -> None:
    """Raise :func:`refused_by`'s reason, if any."""
    why = refused_by(report, [check], method)
    if why:
        raise CotlensError(
            why, "the numbers would be wrong on this model; run the other studies, or add an adapter override"
        )


def check_prepared(model_dir: str | Path, out: str | Path, device: str = "auto") -> dict[str, Any]:
    """The ``check_model`` stage: load a prepared model in float32 with eager attention,
    run the checks, log them and write the report atomically (none if a check every study
    needs fails)."""
    from cotlens.io.atomic import atomic_path
    from cotlens.models.loading import load

    lm = load(model_dir, "float32", device, "eager")
    report = verify(lm.model, str(lm.manifest.get("name", Path(model_dir).name)))
    report.pop("check_seconds")  # in the log: the report stays byte-reproducible
    report["manifest"] = {k: lm.manifest.get(k) for k in ("source", "revision", "commit", "sha256", "path", "repo")}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    return report


def read_report(path: str | Path) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))

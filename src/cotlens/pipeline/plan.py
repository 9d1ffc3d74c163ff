"""``cotlens plan``: what a configuration will cost, before it runs.

For each stage of the configured DAG and each model, the plan counts the model work the
stage will do from the configuration and the prompts themselves (the prompt stages are
run into a temporary directory and tokenized with the model's tokenizer): forward calls,
token-forwards of whole sequences, generated tokens and decode steps, full-vocabulary
read-outs, backward passes. A :class:`Rates` turns work into seconds:

    seconds = flops / flops_per_s + calls * call_s + steps * (call_s + weights / bytes_per_s)
              + generated * kv_bytes(context) / kv_bytes_per_s + load_s + fixed

This machine's rates come from one short calibration of the model itself (a prefill, a
memory copy, one-token forwards, and decode steps over a short and a long cache: what
attending to its keys and values costs), or, where the model is not here or does not fit, of a
random-initialised stand-in whose rates are scaled by FLOPs. A GPU class's rates come from
its datasheet with an efficiency (:data:`GPUS`). The counts are estimates where the work
depends on what the model says (generated lengths, pairs that survive the KL filter):
the plan says so per stage, and ``docs/benchmarks.md`` keeps its error against measured runs.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotlens.core.cost import CostInputs, Prompts, Shape, Work

Config = Mapping[str, Any]

BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
PREPARE_PEAK = 2.3  # models_prepare's peak memory / the float32 weights
PREPARE_BYTES_PER_S = 0.09e9  # models_prepare's conversion (GGUF dequantisation, safetensors written)
SIDE_BY_SIDE = 1.2  # a one-thread stage beside another on 2 cores, vs alone (docs/benchmarks.md)


@dataclass(frozen=True)
class Rates:
    """How fast a machine does model work (one dtype)."""

    flops_per_s: float
    bytes_per_s: float
    call_s_per_layer: float
    load_bytes_per_s: float = 1.5e9
    start_s: float = 4.0  # Python, torch and transformers imports, the self-check
    name: str = ""
    shared: float = 1.0  # slowdown from the stage that runs beside it (make run: two one-thread stages)
    # a decode step's cost per byte of cached keys and values it attends to (the attention
    # FLOPs included); 0: not calibrated, the FLOPs at flops_per_s and the bytes at bytes_per_s
    kv_bytes_per_s: float = 0.0

    def seconds(self, w: Work, s: Shape, nbytes: int) -> float:
        flops = w.tokens * s.flops(w.ctx) + w.readouts * s.readout + 3 * w.backward * s.flops(w.ctx)
        kv = w.generated * s.kv_bytes(nbytes) * w.step_ctx  # bytes of context the generated tokens read
        if self.kv_bytes_per_s:
            flops += w.generated * (s.flops(0) + s.readout)
            t_ctx = kv / self.kv_bytes_per_s
        else:
            flops += w.generated * (s.flops(w.step_ctx) + s.readout)
            t_ctx = kv / self.bytes_per_s
        call = self.call_s_per_layer * s.layers
        t = flops / self.flops_per_s + w.forwards * call + t_ctx
        t += w.steps * s.active * nbytes / self.bytes_per_s
        if w.loads:
            t += w.loads * (self.start_s + s.weights * nbytes / self.load_bytes_per_s)
        return (t + w.fixed_s) * self.shared


# Datasheet peaks (dense) times an efficiency: HF eager/SDPA forwards reach ~35-45% of the
# tensor-core peak on large batches; fp32 runs without TF32 on the CUDA cores. Per-layer
# launch overhead ~0.12 ms (about 15 kernels of ~8 us). Not yet checked on a lent GPU.
GPUS: dict[str, dict[str, Rates]] = {
    "h100": {
        "bfloat16": Rates(0.40 * 989e12, 0.70 * 3.35e12, 1.2e-4, 5e9, 8.0, "H100 bf16"),
        "float32": Rates(0.50 * 67e12, 0.70 * 3.35e12, 1.2e-4, 5e9, 8.0, "H100 fp32"),
    },
    "a100": {
        "bfloat16": Rates(0.40 * 312e12, 0.70 * 2.0e12, 1.4e-4, 4e9, 8.0, "A100 bf16"),
        "float32": Rates(0.50 * 19.5e12, 0.70 * 2.0e12, 1.4e-4, 4e9, 8.0, "A100 fp32"),
    },
    "l40s": {
        "bfloat16": Rates(0.40 * 362e12, 0.70 * 0.864e12, 1.4e-4, 4e9, 8.0, "L40S bf16"),
        "float32": Rates(0.50 * 91.6e12, 0.70 * 0.864e12, 1.4e-4, 4e9, 8.0, "L40S fp32"),
    },
}


# --- this machine: one short calibration ---


def calibrate(model: Any, threads: int = 1) -> Rates:
    """This machine's rates from a few forwards of ``model`` (a causal LM, on the CPU): a
    [4, 256] prefill (FLOP/s), a 256 MB copy (memory bytes/s) and one-token forwards (what
    is left after their weight reads and FLOPs: the overhead per layer call)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        s = Shape.from_config(model.config.to_dict())
        nbytes = next(model.parameters()).element_size()
        gen = torch.Generator().manual_seed(0)
        vocab = min(s.vocab, int(model.get_input_embeddings().weight.shape[0]))

        def timed(fn: Callable[[], Any], n: int = 3) -> float:
            def once() -> float:
                t = time.perf_counter()
                fn()
                return time.perf_counter() - t

            return median_time(once, n)

        with torch.inference_mode():
            ids = torch.randint(0, vocab, (4, 256), generator=gen)
            t_pre = timed(lambda: model(input_ids=ids, logits_to_keep=1), 2)
            one = torch.randint(0, vocab, (1, 1), generator=gen)
            t_call = timed(lambda: model(input_ids=one), 5)
        big, dst = torch.ones(64 * 2**20), torch.zeros(64 * 2**20)  # 256 MB each: bandwidth, read + write
        t_copy = timed(lambda: dst.copy_(big), 3)
        bw = 2 * big.numel() * 4 / t_copy
        flops = 1024 * s.flops(128) / t_pre
        # a one-token forward: reading the weights, its FLOPs, and the rest is per-call overhead
        call = max(t_call - s.active * nbytes / bw - (s.flops(1) + s.readout) / flops, 1e-5) / s.layers
        kv = decode_rate(model, s, nbytes, gen)
        # make run's profile: two one-thread stages side by side share the memory bus
        # (measured 1.04-1.3x slower each than alone): 1.2
        shared = SIDE_BY_SIDE if threads == 1 else 1.0
        return Rates(
            flops,
            min(max(bw, 2e9), 200e9),
            call,
            name=f"this machine ({threads} thread(s))",
            shared=shared,
            kv_bytes_per_s=kv,
        )
    finally:
        torch.set_num_threads(before)


DECODE_ROWS, SHORT_CTX, LONG_CTX = 8, 64, 832


def median_time(once: Callable[[], float], n: int) -> float:
    """The median of the seconds ``once()`` reports, over at least ``n`` runs after one
    warm-up and as many more as fit in ~0.5 s (a small model's forward is a few ms: a
    handful of runs is noise). ``once`` times only what it measures (its setup excluded)."""
    once()
    runs: list[float] = []
    start = time.perf_counter()
    while len(runs) < n or (time.perf_counter() - start < 0.5 and len(runs) < 50):
        runs.append(once())
    return statistics.median(runs)


def decode_rate(model: Any, s: Shape, nbytes: int, gen: Any) -> float:
    """Bytes of cached keys and values a decode step attends to per second: one masked
    decode step of ``DECODE_ROWS`` rows after a cache of ``SHORT_CTX`` and of ``LONG_CTX``
    tokens (random keys and values put straight into the cache, no prefill); everything
    that grows with the context (reading the cache, the attention FLOPs, the mask) is in
    the difference. 0 where the model's cache cannot be filled that way."""
    import torch
    from transformers import DynamicCache

    from cotlens.core.sampling import grow_in_place

    vocab = min(s.vocab, int(model.get_input_embeddings().weight.shape[0]))
    dtype = next(model.parameters()).dtype

    def step(n: int) -> float:
        """One decode step after a fresh cache of ``n`` tokens (filling it is not timed)."""
        cache = DynamicCache(config=model.config)
        for li in range(s.layers):
            kv = [torch.randn(DECODE_ROWS, s.kv_heads, n, s.head_dim, generator=gen).to(dtype) for _ in range(2)]
            cache.update(kv[0], kv[1], li)
        cache = grow_in_place(cache, 2)  # as generation holds it: written in place
        ids = torch.randint(0, vocab, (DECODE_ROWS, 1), generator=gen)
        mask = torch.ones(DECODE_ROWS, n + 1, dtype=torch.long)
        mask[1:, :3] = 0  # padded rows, as a left-padded batch has
        t = time.perf_counter()
        model(input_ids=ids, attention_mask=mask, position_ids=torch.full((DECODE_ROWS, 1), n), past_key_values=cache)
        return time.perf_counter() - t

    try:
        with torch.inference_mode():
            dt = median_time(lambda: step(LONG_CTX), 5) - median_time(lambda: step(SHORT_CTX), 5)
    except (TypeError, ValueError, AttributeError, IndexError, RuntimeError, NotImplementedError):
        return 0.0  # a cache layout (e.g. compressed keys) this cannot fill
    bytes_read = DECODE_ROWS * (LONG_CTX - SHORT_CTX) * s.kv_bytes(nbytes)
    return bytes_read / dt if dt > 0 else 0.0


def stand_in(s: Shape, max_weights: float = 2.5e8) -> Any:
    """A random-initialised Llama with ``s``'s widths (layers and vocabulary cut so it has at
    most ``max_weights`` parameters): what the calibration runs where the model is not here."""
    from transformers import LlamaConfig, LlamaForCausalLM

    per_layer = max(1.0, (s.weights - s.vocab * s.d_model) / s.layers)
    layers = max(1, min(s.layers, int(max_weights // per_layer)))
    cfg = LlamaConfig(
        hidden_size=s.d_model,
        intermediate_size=s.d_mlp * s.top_k,
        num_hidden_layers=layers,
        num_attention_heads=s.heads,
        num_key_value_heads=s.kv_heads,
        head_dim=s.head_dim,
        vocab_size=min(s.vocab, 32000),
    )
    return LlamaForCausalLM(cfg).eval()


# --- counts ---


CHARS_PER_TOKEN = 3.6


def pseudo_tokens(text: str) -> list[str]:
    """Without the model's tokenizer: ~3.6 characters a token, cut at fixed offsets, so two
    texts that share a prefix share its pseudo-tokens."""
    n = max(1, round(len(text) / CHARS_PER_TOKEN))
    cut = [round(i * CHARS_PER_TOKEN) for i in range(n)] + [len(text)]
    return [text[a:b] for a, b in zip(cut, cut[1:], strict=False)]


def counter(weights_dir: Path | None) -> Callable[[str], Sequence[Any]]:
    """The token ids of a text under the model's tokenizer, or :func:`pseudo_tokens` without one."""
    tok = tokenizer_of(weights_dir)
    if tok is not None:
        cache: dict[str, list[int]] = {}

        def encode(text: str) -> list[int]:
            if text not in cache:
                cache[text] = list(tok(text)["input_ids"])
            return cache[text]

        return encode
    return pseudo_tokens


def tokenizer_of(weights_dir: Path | None) -> Any:
    """The model's tokenizer, or None where its files are not here."""
    if weights_dir is not None and (weights_dir / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(weights_dir))
    return None


def prompt_rows(study: str, config: Config) -> list[dict[str, Any]]:
    """The prompt table a study's prompt stage would write (run into a temporary directory)."""
    import importlib

    from cotlens.io.parquet import read_table
    from cotlens.pipeline.stageparams import stage_params

    mod = importlib.import_module(f"cotlens.{study}.stages.prompts")
    with tempfile.TemporaryDirectory() as d:
        out = str(Path(d) / "prompts.parquet")
        mod.run({}, {"prompts": out}, stage_params(f"{study}_prompts", config), {}, 1)
        return read_table(out).to_pylist()


def study_stages(study: str) -> Callable[[CostInputs], dict[str, Work]]:
    """A study's cost model: ``cotlens.<study>.cost.stages``."""
    import importlib

    return importlib.import_module(f"cotlens.{study}.cost").stages


def train_work(entry: Mapping[str, Any]) -> tuple[Shape, Work]:
    from cotlens.models.registry import TRAIN_DEFAULTS

    r = {**TRAIN_DEFAULTS, **entry}
    s = Shape(
        int(r["layers"]),
        int(r["d_model"]),
        int(r["d_expert"]),
        int(r["heads"]),
        int(r["kv_heads"]),
        int(r["d_model"]) // int(r["heads"]),
        int(r["vocab_size"]),
        int(r["experts"]),
        int(r["top_k"]),
    )
    seq = int(r.get("seq_len", 32))  # the corpus lines: short questions and answers
    tokens = int(r["steps"]) * int(r["batch_size"]) * seq
    # a tiny model trains at a fraction of the matmul rate: optimizer and router bookkeeping per step
    w = Work(calls=int(r["steps"]) * 12, tokens=tokens, ctx=seq / 2, backward=tokens, readouts=tokens)
    w.note = "per step: ~12 forward-call overheads (backward, optimizer, router loss)"
    return s, w


@dataclass(frozen=True)
class Row:
    stage: str
    model: str
    work: Work
    cpu_s: float
    gpu_s: float
    peak_gb: float


def peak_gb(s: Shape, w: Work, nbytes: int, batch: int = 16) -> float:
    """Weights, the keys and values of one batch, the activations a stage holds at once
    (``Work.held``), and ~1 GB of Python and torch."""
    ctx = max(w.ctx * 2, w.step_ctx)
    return (s.weights * nbytes + batch * ctx * s.kv_bytes(nbytes) + w.held * nbytes) / 1e9 + 1.0


# shapes of registry entries that may not be on this machine yet (from their config.json):
# layers, hidden, intermediate (per expert), heads, key/value heads, vocabulary, extra keys
_SHAPES: dict[str, tuple[int, int, int, int, int, int, dict[str, int]]] = {
    "meta-llama/Llama-2-7b-hf": (32, 4096, 11008, 32, 32, 32000, {}),
    "meta-llama/Llama-2-13b-hf": (40, 5120, 13824, 40, 40, 32000, {}),
    "allenai/OLMoE-1B-7B-0924": (16, 2048, 1024, 16, 16, 50304, {"num_experts": 64, "num_experts_per_tok": 8}),
    "smollm2-135m": (30, 576, 1536, 9, 3, 49152, {}),
    "qwen2.5-0.5b": (24, 896, 4864, 14, 2, 151936, {}),
    "qwen2.5-1.5b": (28, 1536, 8960, 12, 2, 151936, {}),
    "gemma3-270m": (18, 640, 2048, 4, 1, 262144, {"head_dim": 256}),
}
KNOWN: dict[str, dict[str, Any]] = {
    name: dict(
        num_hidden_layers=la,
        hidden_size=d,
        intermediate_size=f,
        num_attention_heads=h,
        num_key_value_heads=kv,
        vocab_size=v,
        **extra,
    )
    for name, (la, d, f, h, kv, v, extra) in _SHAPES.items()
}


@dataclass
class ModelInfo:
    name: str
    shape: Shape
    weights: Path | None  # a local transformers directory (prepared), if any
    train: Work | None = None
    check_tokens: int = 0  # the self-checks' sequence length (cotlens.models.checks.length_for)


def model_info(name: str, config: Config, root: Path) -> ModelInfo:
    """A registry entry's shape: its prepared config.json, its training recipe, or :data:`KNOWN`."""
    import json

    from cotlens.errors import CotlensError
    from cotlens.models.checks import length_for

    entry = dict(config["models"][name])
    if entry.get("source") == "train":
        shape, work = train_work(entry)
        d = root / "resources" / "models" / name / "weights"
        return ModelInfo(name, shape, d if d.is_dir() else None, work, check_tokens=length_for({}))
    here: list[Path] = [root / "resources" / "models" / name / "weights"]
    if entry.get("source") == "local":
        here.append(Path(str(entry.get("path", ""))))
    for d in here:
        if (d / "config.json").is_file():
            c = json.loads((d / "config.json").read_text())
            return ModelInfo(name, Shape.from_config(c), d, check_tokens=length_for(c))
    key = entry.get("repo") or entry.get("id") or name
    if key in KNOWN:
        return ModelInfo(name, Shape.from_config(KNOWN[key]), None, check_tokens=length_for(KNOWN[key]))
    raise CotlensError(
        f"the plan does not know the shape of model {name!r} ({key})",
        f"prepare it first (snakemake resources/models/{name}/manifest.json) or give a local path",
    )


def calibration(info: ModelInfo, dtype: str, threads: int, log: Callable[[str], None]) -> Rates:
    """This machine's rates: from the model itself where it is here and small enough, else
    from a random-initialised stand-in of its widths."""
    import torch

    nbytes = BYTES.get(dtype, 4)
    torch_dtype = getattr(torch, dtype)
    if info.weights is not None and info.shape.weights * nbytes < 4e9:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(info.weights), dtype=torch_dtype).eval()
        what = f"{info.name} itself"
    else:
        model = stand_in(info.shape).to(torch_dtype)
        what = f"a random-initialised stand-in of {info.name}'s widths ({model.config.num_hidden_layers} layers)"
    t = time.perf_counter()
    r = calibrate(model, threads)
    log(
        f"calibrated on {what} in {time.perf_counter() - t:.1f} s: {r.flops_per_s / 1e9:.0f} GFLOP/s, "
        f"{r.bytes_per_s / 1e9:.1f} GB/s, {r.call_s_per_layer * 1e3:.2f} ms per layer call, "
        + (
            f"decode attention {r.kv_bytes_per_s / 1e9:.1f} GB/s of keys and values"
            if r.kv_bytes_per_s
            else "decode attention not calibrated"
        )
    )
    return r


def build(
    config: Config,
    root: Path,
    gpu: str = "h100",
    threads: int = 1,
    log: Callable[[str], None] = print,
    rates: Mapping[str, Rates] | None = None,
) -> list[Row]:
    """Every model stage of the configured DAG, per model, with its work and times."""
    from cotlens.errors import CotlensError
    from cotlens.models.cost import check_cost
    from cotlens.pipeline.stageparams import with_defaults

    config = with_defaults(config)
    if gpu not in GPUS:
        raise CotlensError(f"unknown GPU class {gpu!r}", f"use one of {sorted(GPUS)}")
    dtype = str(config.get("runtime", {}).get("dtype", "float32"))
    nbytes = BYTES.get(dtype, 4)
    g = GPUS[gpu].get(dtype, GPUS[gpu]["float32"])
    studies = list(config["studies"])
    dense = [m for m in config["active_models"]] if set(studies) - {"experts"} else []
    moe = list(config["experts"]["models"]) if "experts" in studies else []
    infos = {m: model_info(m, config, root) for m in dict.fromkeys(dense + moe)}
    cal = dict(rates or {})
    for m, info in infos.items():
        if m not in cal:
            cal[m] = calibration(info, dtype, threads, log)
    rows: list[Row] = []

    def add(stage: str, m: str, w: Work, shape: Shape, peak: float | None = None, fp32: bool = False) -> None:
        nb, gr = (4, GPUS[gpu]["float32"]) if fp32 else (nbytes, g)  # fp32: a stage that loads in float32
        peak = peak_gb(shape, w, nb) if peak is None else peak
        rows.append(Row(stage, m, w, cal[m].seconds(w, shape, nb), gr.seconds(w, shape, nb), peak))

    for m, info in infos.items():
        s = info.shape
        if info.train is not None:
            add("models_train", m, info.train, s)
        else:
            # measured here: smollm2-135m 22 s, qwen2.5-1.5b 97 s (0.54 and 6.2 GB of float32 weights)
            prep = Work(fixed_s=14 + s.weights * nbytes / PREPARE_BYTES_PER_S, loads=0)
            prep.note = "GGUF/weights conversion: ~0.09 GB/s"
            # the conversion holds ~2.3x the float32 weights (qwen2.5-1.5b: ~14 GB, config/paper.yaml)
            add("models_prepare", m, prep, s, PREPARE_PEAK * s.weights * 4 / 1e9 + 1.0)
        check = check_cost(s, info.check_tokens)
        check.note = "in float32, whatever the run's dtype"
        add("models_check", m, check, s, fp32=True)
    prompts: dict[str, list[dict[str, Any]]] = {}
    for study in studies:
        prompts[study] = prompt_rows(study, config)
        for m in moe if study == "experts" else dense:
            info = infos[m]
            st = CostInputs(
                config, info.shape, Prompts(prompts[study], counter(info.weights), tokenizer_of(info.weights))
            )
            for stage, w in study_stages(study)(st).items():
                add(stage, m, w, info.shape)
    return rows


def render(rows: Sequence[Row], gpu: str, threads: int) -> str:
    """The plan as a Markdown table, then the totals and the stage that dominates."""

    def hms(s: float) -> str:
        return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"

    def big(x: float) -> str:
        return f"{x:.3g}" if x < 1e4 else f"{x:.2e}"

    out = [
        f"| stage | model | forwards | token-forwards | generated tokens | peak GB | this machine ({threads} thread) "
        f"| {gpu.upper()} | estimate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        w = r.work
        out.append(
            f"| {r.stage} | {r.model} | {big(w.forwards)} | {big(w.tokens + w.backward)} | {big(w.generated)} | "
            f"{r.peak_gb:.1f} | {hms(r.cpu_s)} | {hms(r.gpu_s)} | {w.note} |"
        )
    cpu, gpu_s = sum(r.cpu_s for r in rows), sum(r.gpu_s for r in rows)
    top = max(rows, key=lambda r: r.gpu_s)
    out += [
        "",
        f"total: {hms(cpu)} of stage time on this machine; {gpu_s / 3600:.2f} GPU-hours on one {gpu.upper()} "
        f"(figures and prompt stages, seconds each, not counted)",
        f"dominant stage: {top.stage} ({top.model}), {100 * top.gpu_s / max(gpu_s, 1e-9):.0f}% of the GPU time",
    ]
    return "\n".join(out)


def slurm_resources(
    rows: Sequence[Row], margin: float = 2.0, mem_margin: float = 1.25, floor: int = 30
) -> dict[str, dict[str, int]]:
    """Per rule, its largest model's SLURM runtime (minutes: ``margin`` x the plan's GPU
    time, at least ``floor``: a job cut at its limit costs a requeue) and memory (MB:
    ``mem_margin`` x the plan's peak, in whole GB, at least 4000)."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        cur = out.setdefault(r.stage, {"runtime": floor, "mem_mb": 4000})
        cur["runtime"] = max(cur["runtime"], math.ceil(margin * r.gpu_s / 60))
        cur["mem_mb"] = max(cur["mem_mb"], int(math.ceil(mem_margin * r.peak_gb)) * 1000)
    return out


BEGIN = "  # >>> the model stages, from `cotlens plan"
END = "  # <<< end of the plan's resources"


def slurm_profile(text: str, rows: Sequence[Row], how: str) -> str:
    """A SLURM profile's text (workflow/profiles/slurm/config.yaml) with the block of
    ``set-resources`` between its :data:`BEGIN` and :data:`END` lines rewritten: one line
    per rule the plan covers, its runtime and memory from :func:`slurm_resources`, its CPUs
    and GPUs kept from the block it replaces (new rules: 8 CPUs, one GPU; the CPU-only
    ``models_prepare``/``models_train`` none). Every other line is kept as written."""
    import yaml

    from cotlens.errors import CotlensError

    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(BEGIN)]
    ends = [i for i, line in enumerate(lines) if line.startswith(END)]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise CotlensError(
            "the SLURM profile has no block for the plan's resources",
            f"copy workflow/profiles/slurm/config.yaml: its set-resources hold the lines {BEGIN.strip()!r} ... {END.strip()!r}",
        )
    a, b = starts[0], ends[0]
    old = (yaml.safe_load("\n".join(lines[a + 1 : b])) or {}) if b > a + 1 else {}
    block = [f"{BEGIN}{how}`: runtime 2 x its GPU time (at least 30 min), memory 1.25 x its peak; do not edit"]
    for stage, r in slurm_resources(rows).items():
        cpu_only = stage in ("models_prepare", "models_train")
        kept = {k: v for k, v in dict(old.get(stage) or {}).items() if k not in ("runtime", "mem_mb")}
        kept = kept or ({"cpus_per_task": 4} if cpu_only else {"cpus_per_task": 8, "gpu": 1})
        fields = ", ".join(f"{k}: {v}" for k, v in {"mem_mb": r["mem_mb"], "runtime": r["runtime"], **kept}.items())
        block.append(f"  {stage}: {{{fields}}}")
    return "\n".join([*lines[:a], *block, *lines[b:]]) + "\n"

"""The one hook layer: capture (and later patch) activations through the adapter table.

Sites, per decoder block ``l``:
- ``resid``: the block's output (the residual stream after block l);
- ``attn_heads``: the input of the attention output projection, i.e. every head's
  output concatenated [n_heads * head_dim];
- ``mlp``: the input of the FFN down projection (the FFN neurons).

Captures gather the requested positions *inside* the hook, so memory is
[batch, positions, dim] per layer, never [batch, seq, dim].
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from cotlens.models.adapters import Adapter, get, layers

SITES = ("resid", "attn_heads", "mlp")


def _first(output: Any) -> torch.Tensor:
    # transformers 5 decoder layers return a Tensor; older ones and other families a
    # tuple. Never index a Tensor with [0]: that silently takes batch element 0.
    return output if isinstance(output, torch.Tensor) else output[0]


def site_module(model: nn.Module, ad: Adapter, site: str, layer: int) -> nn.Module:
    block = layers(model, ad)[layer]
    if site == "resid":
        return block
    if site == "attn_heads":
        return get(block, ad.attn_out)
    if site == "mlp":
        return get(block, ad.mlp_out)
    raise ValueError(f"unknown site {site!r}; known: {SITES}")


def router_modules(model: nn.Module, ad: Adapter) -> dict[int, nn.Module]:
    """The MoE router of every block that has one (dense blocks of mixed stacks, such as
    DeepSeek's first layers or Qwen2-MoE's ``mlp_only_layers``, are left out).

    Every router in the adapter table returns ``(router_logits, top_k_weights,
    top_k_index)`` over the block's tokens flattened to [tokens, ...].
    """
    if ad.router is None:
        raise ValueError(f"family {ad.family!r} has no router: it is not a mixture of experts")
    out: dict[int, nn.Module] = {}
    for i, block in enumerate(layers(model, ad)):
        try:
            out[i] = get(block, ad.router)
        except AttributeError:
            continue
    return out


InputFn = Callable[[torch.Tensor], "torch.Tensor | None"]


def site_pre_hooks(model: nn.Module, ad: Adapter, site: str, fns: dict[int, InputFn]) -> list[Any]:
    """Register ``fns[layer]`` on the input of ``site`` (attn_heads or mlp) at each layer.

    Every fn sees [batch, position, dim], whatever the family does: OPT runs its FFN on
    [batch * position, d] (``adapter.flat_ffn``), so a pre-hook on the block records the
    block's [batch, position] and the view is restored here. A fn that returns a tensor
    replaces the input (same [batch, position, dim] shape); None leaves it.
    """
    if site not in ("attn_heads", "mlp"):
        raise ValueError(f"site_pre_hooks hooks module inputs; use attn_heads or mlp, not {site!r}")
    flat = site == "mlp" and ad.flat_ffn
    blocks = layers(model, ad)
    home = next(model.parameters()).device  # a model spread by device_map: fns see one device
    handles: list[Any] = []
    for layer, fn in fns.items():
        shape: dict[str, tuple[int, int]] = {}
        if flat:

            def block_pre(_m: nn.Module, a: tuple[Any, ...], kw: dict[str, Any], s: Any = shape) -> None:
                h = a[0] if a else kw["hidden_states"]
                s["bt"] = (int(h.shape[0]), int(h.shape[1]))

            handles.append(blocks[layer].register_forward_pre_hook(block_pre, with_kwargs=True))

        def pre(_m: nn.Module, a: tuple[Any, ...], f: InputFn = fn, s: Any = shape) -> Any:
            x = a[0]
            view = x.view(*s["bt"], x.shape[-1]) if flat and x.dim() == 2 else x
            new = f(view.to(home))
            if new is None:
                return None
            return (new.reshape(x.shape).to(x.device), *a[1:])

        handles.append(site_module(model, ad, site, layer).register_forward_pre_hook(pre))
    return handles


@contextlib.contextmanager
def hooked(handles_fn: Callable[[], Iterable[Any]]) -> Iterator[None]:
    """Register the hooks ``handles_fn`` returns the handles of; remove them on exit."""
    handles = list(handles_fn())
    try:
        yield
    finally:
        for h in handles:
            h.remove()


OutputHook = Callable[[nn.Module, Any, Any], Any]


def output_hooks(hooks: Iterable[tuple[nn.Module, OutputHook]]) -> contextlib.AbstractContextManager[None]:
    """Forward hooks ``fn(module, args, output) -> new output or None`` on modules, for the
    duration of a ``with`` block (the hooks of dropout, noise, expert switches, ...)."""
    pairs = list(hooks)
    return hooked(lambda: [m.register_forward_hook(fn) for m, fn in pairs])


class Hooked:
    """Base of every stateful hooked context manager (captures, scorers, meters): entering
    calls :meth:`_reset` then registers the handles :meth:`_register` returns; leaving
    removes them, also on an exception."""

    _handles: list[Any]

    def _register(self) -> Iterable[Any]:
        raise NotImplementedError

    def _reset(self) -> None:
        """Clear what a previous ``with`` block recorded (nothing by default)."""

    def __enter__(self) -> Any:
        self._reset()
        self._handles = list(self._register())
        return self

    def __exit__(self, *exc: object) -> None:
        for h in getattr(self, "_handles", []):
            h.remove()
        self._handles = []


class Capture(Hooked):
    """Context manager recording ``sites`` of every layer during forwards.

    ``positions`` ([batch, P] long) selects token positions per row; None keeps all.
    After the forward, ``self.out[site]`` is a list over layers of [batch, P, dim].
    """

    def __init__(
        self,
        model: nn.Module,
        adapter: Adapter,
        sites: Sequence[str] = ("resid", "attn_heads"),
        positions: torch.Tensor | None = None,
    ) -> None:
        bad = [s for s in sites if s not in SITES]
        if bad:
            raise ValueError(f"unknown sites {bad}; known: {SITES}")
        self.model, self.adapter, self.sites = model, adapter, tuple(sites)
        self.positions = positions
        self.n_layers = len(layers(model, adapter))
        self.home = next(model.parameters()).device
        self.out: dict[str, list[torch.Tensor | None]] = {}

    def _take(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.home)  # no copy unless device_map spread the model
        if self.positions is None:
            return x.detach().clone()  # a family may add to it in place later (Falcon's parallel block)
        rows = torch.arange(x.shape[0], device=x.device)[:, None]
        return x[rows, self.positions.to(x.device)].detach()

    def _register(self) -> list[Any]:
        handles = []
        for site in self.sites:
            for layer in range(self.n_layers):
                mod = site_module(self.model, self.adapter, site, layer)
                store = self.out[site]

                if site == "resid":

                    def fwd(_m: nn.Module, _a: Any, o: Any, i: int = layer, s: Any = store) -> None:
                        s[i] = self._take(_first(o))

                    handles.append(mod.register_forward_hook(fwd))
                else:

                    def pre(x: torch.Tensor, i: int = layer, s: Any = store) -> None:
                        s[i] = self._take(x)

                    handles += site_pre_hooks(self.model, self.adapter, site, {layer: pre})
        return handles

    def _reset(self) -> None:
        self.out = {s: [None] * self.n_layers for s in self.sites}

    def __enter__(self) -> Capture:
        return super().__enter__()

    def stacked(self, site: str) -> torch.Tensor:
        """[batch, P, n_layers, dim] for one site."""
        got = self.out[site]
        if any(t is None for t in got):
            raise RuntimeError(f"site {site!r} was not reached for every layer")
        return torch.stack([t for t in got if t is not None], dim=2)


class StepCapture(Capture):
    """:class:`Capture` through a generation: ``sites`` of every layer at the last position
    of every announced forward (``generate_batch``'s ``on_step=cap.rows``: the prompt's
    last token, then each generated token fed back), kept per original row, with the
    index of the model's top next token there. Forwards not announced (a prefix run
    once) are not recorded. :meth:`row` gives row ``r``'s positions in the order run."""

    def __init__(
        self, model: nn.Module, adapter: Adapter, sites: Sequence[str] = ("resid", "attn_heads"), batch: int = 1
    ) -> None:
        super().__init__(model, adapter, sites, None)
        self.batch = batch
        self._active: list[int] | None = None

    def _reset(self) -> None:
        super()._reset()
        self._active = None
        self._top: torch.Tensor | None = None
        self.steps: list[list[tuple[dict[str, torch.Tensor], int]]] = [[] for _ in range(self.batch)]

    def _take(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1].to(self.home).detach().clone()

    def _register(self) -> list[Any]:
        def top(_m: nn.Module, _a: Any, o: Any) -> None:
            if self._active is not None:
                self._top = o.logits[:, -1].argmax(-1).to(self.home)

        return [*super()._register(), self.model.register_forward_hook(top)]

    def _flush(self) -> None:
        if self._active is None:
            return
        if any(t is None for site in self.sites for t in self.out[site]):
            raise RuntimeError("a site was not reached for every layer")
        got = {site: torch.stack(self.out[site], dim=1) for site in self.sites}  # type: ignore[arg-type]  # [rows, n_layers, dim]
        if self._top is None:
            raise RuntimeError("StepCapture saw no logits: hook the causal LM, not its base model")
        for k, row in enumerate(self._active):
            self.steps[row].append(({site: got[site][k] for site in self.sites}, int(self._top[k])))
        self._active, self._top = None, None
        for site in self.sites:  # in place: the hooks hold these lists
            self.out[site][:] = [None] * self.n_layers

    def __enter__(self) -> StepCapture:
        return super().__enter__()  # type: ignore[return-value]

    def rows(self, active: Sequence[int]) -> None:
        """``on_step``: the forward about to run holds these original rows."""
        self._flush()
        self._active = list(active)

    def row(self, r: int) -> tuple[dict[str, torch.Tensor], list[int]]:
        """Row ``r``: {site: [positions, n_layers, dim]} and the top next token at each position."""
        self._flush()
        got = self.steps[r]
        return {site: torch.stack([a[site] for a, _ in got]) for site in self.sites}, [t for _, t in got]


class BlockCalls(Hooked):
    """Record what every decoder block is called with during one forward.

    ``inputs[l]`` is the hidden state entering block l, ``kwargs[l]`` the keyword
    arguments the model passed it (attention mask, rotary embeddings, cache position,
    ...). :func:`replay` reruns blocks l.. from those, so a method can restart the
    forward at any layer without knowing the family's internals.
    """

    def __init__(self, model: nn.Module, adapter: Adapter) -> None:
        self.blocks = layers(model, adapter)
        self.inputs: list[torch.Tensor] = []
        self.kwargs: list[dict[str, Any]] = []

    def _register(self) -> list[Any]:
        def pre(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            # Families pass some arguments positionally (GPT-2: past, mask); bind them
            # to names so replay can call every block the same way.
            sig = inspect.signature(m.forward)
            bound = sig.bind_partial(*args, **kwargs).arguments
            first = next(iter(sig.parameters))
            named: dict[str, Any] = {}
            for k, v in bound.items():
                if sig.parameters[k].kind is inspect.Parameter.VAR_KEYWORD:
                    named.update(v)
                elif k != first:
                    named[k] = v
            self.inputs.append(bound[first].detach())
            self.kwargs.append(named)

        return [b.register_forward_pre_hook(pre, with_kwargs=True) for b in self.blocks]

    def _reset(self) -> None:
        self.inputs, self.kwargs = [], []

    def __enter__(self) -> BlockCalls:
        return super().__enter__()


def replay(
    blocks: Sequence[nn.Module],
    start: int,
    hidden: torch.Tensor,
    kwargs: Sequence[dict[str, Any]],
    cache: Any = None,
    cache_arg: str = "past_key_values",
) -> torch.Tensor:
    """Run blocks ``start..`` on ``hidden`` with the recorded kwargs (batch-1 tensors broadcast).

    ``cache`` replaces the recorded cache under the blocks' own keyword ``cache_arg``
    (``past_key_values``, or ``layer_past`` in GPT-NeoX, GPT-J and Falcon; per-position
    patching passes the key/value cache of the earlier positions); without it no cache
    is used.
    """
    h = hidden
    for layer in range(start, len(blocks)):
        kw = dict(kwargs[layer])
        if cache_arg in kw or cache is not None:
            kw[cache_arg] = cache
        if "use_cache" in kw:
            kw["use_cache"] = cache is not None
        h = _first(blocks[layer](h, **kw))
    return h


@contextlib.contextmanager
def edit_inputs(
    model: nn.Module, adapter: Adapter, site: str, edits: dict[int, Callable[[torch.Tensor], torch.Tensor]]
) -> Iterator[None]:
    """Replace the input of ``site`` (attn_heads or mlp) at the given layers by ``fn(input)``
    (``fn`` sees and returns [batch, position, dim])."""
    if site == "resid":
        raise ValueError("edit_inputs edits module inputs; use attn_heads or mlp")
    with hooked(lambda: site_pre_hooks(model, adapter, site, dict(edits))):
        yield

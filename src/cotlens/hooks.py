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
from collections.abc import Callable, Iterator, Sequence
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


@contextlib.contextmanager
def hooked(handles_fn: Callable[[], Sequence[Any]]) -> Iterator[None]:
    handles = list(handles_fn())
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class Capture:
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
        self.out: dict[str, list[torch.Tensor | None]] = {}
        self._ctx: contextlib.AbstractContextManager[None] | None = None

    def _take(self, x: torch.Tensor) -> torch.Tensor:
        if self.positions is None:
            return x.detach()
        rows = torch.arange(x.shape[0], device=x.device)[:, None]
        return x[rows, self.positions].detach()

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

                    def pre(_m: nn.Module, a: Any, i: int = layer, s: Any = store) -> None:
                        s[i] = self._take(a[0])

                    handles.append(mod.register_forward_pre_hook(pre))
        return handles

    def __enter__(self) -> Capture:
        self.out = {s: [None] * self.n_layers for s in self.sites}
        self._ctx = hooked(self._register)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._ctx is not None
        self._ctx.__exit__(*exc)

    def stacked(self, site: str) -> torch.Tensor:
        """[batch, P, n_layers, dim] for one site."""
        got = self.out[site]
        if any(t is None for t in got):
            raise RuntimeError(f"site {site!r} was not reached for every layer")
        return torch.stack([t for t in got if t is not None], dim=2)

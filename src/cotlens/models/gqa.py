"""Grouped-query attention on the CPU without copying keys and values.

transformers' SDPA path repeats every key/value head ``heads / kv_heads`` times
(``repeat_kv``: a copy of the whole cache per layer) for a forward of several query
tokens with a mask (a padded batch, a suffix after a cached prefix), because on CUDA the
masked grouped kernel falls back to the slow math kernel. On the CPU, torch's kernel takes
the grouped heads as they are (``enable_gqa=True``) and gives the same bits
(``tests/integration/test_hooks_sampling.py`` checks every grouped zoo family), in ~0.6x
the time at a 900-token context. :func:`cpu_gqa` routes exactly that case there:
one-token decoding, unmasked forwards and every other device keep transformers' choice.
"""

from __future__ import annotations

from typing import Any

from transformers.integrations import sdpa_attention as _sdpa

_STOCK = _sdpa.use_gqa_in_sdpa


def _use_gqa(attention_mask: Any, key: Any, value: Any) -> bool:
    if (
        key.device.type == "cpu"
        and attention_mask is not None
        and attention_mask.dim() == 4
        and attention_mask.shape[-2] > 1
        and key.shape[-1] == value.shape[-1]
    ):
        return True
    return bool(_STOCK(attention_mask, key, value))


def cpu_gqa(on: bool = True) -> None:
    """Use (``on``) or stop using torch's grouped kernel for masked multi-token forwards on
    the CPU. Process-wide and idempotent; :func:`cotlens.models.loading.open_model` turns
    it on."""
    _sdpa.use_gqa_in_sdpa = _use_gqa if on else _STOCK


def cpu_gqa_on() -> bool:
    return _sdpa.use_gqa_in_sdpa is _use_gqa

"""Logit lens (nostalgebraist, 2020): decode each layer's residual stream with the
final norm and the unembedding, and read the probabilities of the in-context token
and of the model's no-context prior token."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from cotlens.circuits import tables
from cotlens.io.parquet import arrow_to_vectors, to_table
from cotlens.models.adapters import readout
from cotlens.models.loading import Loaded

ID_COLUMNS = ("prompt_id", "sample_idx", "pos", "pos_kind", "step", "layer", "context_token", "prior_token")


@torch.inference_mode()
def lens_batch(lm: Loaded, acts: pa.Table, chunk: int = 512) -> pa.Table:
    """One lens row per activation row (resid column)."""
    resid = arrow_to_vectors(acts.column("resid"))
    ctx = np.asarray(acts.column("context_token"), dtype=np.int64)
    pri = np.asarray(acts.column("prior_token"), dtype=np.int64)
    p_ctx, p_pri, rank, top = [], [], [], []
    for s in range(0, len(resid), chunk):
        x = torch.from_numpy(resid[s : s + chunk]).to(lm.device, dtype=next(lm.model.parameters()).dtype)
        logp = torch.log_softmax(readout(lm.model, lm.adapter, x).float(), dim=-1)
        c = torch.from_numpy(ctx[s : s + chunk]).to(lm.device)
        q = torch.from_numpy(pri[s : s + chunk]).to(lm.device)
        lc = logp.gather(1, c[:, None]).squeeze(1)
        p_ctx.append(lc.exp().cpu())
        p_pri.append(logp.gather(1, q[:, None]).squeeze(1).exp().cpu())
        rank.append((logp > lc[:, None]).sum(-1).cpu())
        top.append(logp.argmax(-1).cpu())
    data = {k: acts.column(k) for k in ID_COLUMNS}
    cat = (lambda xs, dt: torch.cat(xs).numpy().astype(dt)) if p_ctx else (lambda xs, dt: np.zeros(0, dt))
    data.update(
        p_context=cat(p_ctx, np.float32),
        p_prior=cat(p_pri, np.float32),
        rank_context=cat(rank, np.int32),
        top_token=cat(top, np.int32),
    )
    return to_table(data, tables.LENS)

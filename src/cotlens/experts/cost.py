"""The cost of Study 4's model stages for ``cotlens plan``: the work each does,
counted from the configuration and the prompts (``cotlens.core.cost``)."""

from __future__ import annotations

from cotlens.core.cost import CostInputs, Work, batches, generation, plus, times


def stages(st: CostInputs) -> dict[str, Work]:
    """The model work of each of the study's model stages (``cotlens plan``)."""
    g, e, p = st.config["experts"]["generation"], st.config["experts"]["effects"], st.prompts
    max_new, bs = int(g["max_new_tokens"]), int(g["batch_size"])
    q = p.mean("question")
    study_map = p.n(lambda r: r["set"] == "study")
    routes = generation(study_map, q, 0.8 * max_new, max_new, bs)
    ask = p.n(lambda r: r["set"] == "quality" or (r["set"] == "study" and r["split"] == "eval"))
    refs = p.n(lambda r: r["set"] == "reference")
    ref = q + p.mean("reference")
    one = plus(
        generation(ask, q, 0.8 * max_new, max_new, bs),
        Work(calls=batches(refs, bs), tokens=refs * ref, ctx=ref / 2, readouts=refs * ref, loads=0),
        Work(calls=batches(ask, bs), tokens=ask * (q + max_new), ctx=q, readouts=ask * max_new, loads=0),
    )
    conds = 1 + len(e["k"]) * 2 * (1 + int(e["random_seeds"]))
    eff = times(one, conds)
    eff.loads = 1
    eff.note = (
        f"{conds} conditions; generated length ~0.8 x max_new_tokens (the trained toy writes ~0.4 x); "
        "an upper bound on the fluency forwards (a batch of responses an earlier condition wrote is scored once)"
    )
    return {"experts_routes": routes, "experts_effects": eff}

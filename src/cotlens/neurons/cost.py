"""The cost of Study 2's model stages for ``cotlens plan``: the work each does,
counted from the configuration and the prompts (``cotlens.core.cost``)."""

from __future__ import annotations

from typing import Any

from cotlens.core.cost import CostInputs, Work, generation, times


def stages(st: CostInputs) -> dict[str, Work]:
    """The model work of each of the study's model stages (``cotlens plan``)."""
    from cotlens.neurons.methods import effect_conditions, split

    c, p = st.config["neurons"], st.prompts
    d, e = c["discovery"], {**c["discovery"], **c["effects"]}
    max_new, bs = int(d["max_new_tokens"]), int(d["batch_size"])
    gen = 10.0 + 14.0 * int(c["prompts"]["max_steps"])  # one sentence per step, then the answer

    def full(r: dict[str, Any]) -> bool:
        return bool(r["variant"] == "full")

    disc_n = p.n(lambda r: full(r) and split(r["problem_id"]) == "discovery")
    prompt = p.mean("prompt", full)
    shared = p.shared("prompt", bs, lambda r: full(r) and split(r["problem_id"]) == "discovery")
    disc = generation(disc_n, prompt, gen, max_new, bs, shared)
    disc.note = "generated length: ~14 tokens a step"
    ev = p.n(lambda r: full(r) and split(r["problem_id"]) == "eval")
    conds = effect_conditions(e, 10, [int(x) for x in e["top_n"]])
    one = generation(
        ev, prompt, gen, max_new, bs, p.shared("prompt", bs, lambda r: full(r) and split(r["problem_id"]) == "eval")
    )
    eff = times(one, len(conds))
    eff.loads, eff.note = 1, f"{len(conds)} conditions; generated length: ~14 tokens a step"
    return {"neurons_discovery": disc, "neurons_effects": eff}

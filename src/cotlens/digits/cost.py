"""The cost of Study 3's model stages for ``cotlens plan``: the work each does,
counted from the configuration and the prompts (``cotlens.core.cost``)."""

from __future__ import annotations

from cotlens.core.cost import CostInputs, Work, batches, plus


def stages(st: CostInputs) -> dict[str, Work]:
    """The model work of each of the study's model stages (``cotlens plan``)."""
    cp, c, p = st.config["digits"]["prompts"], st.config["digits"]["confidence"], st.prompts
    n = p.n()
    prompt, answer = p.mean("prompt"), p.mean("answer")
    settings = list(c["settings"])
    rounds = max(1.0, answer / 3)  # own digits: a round per place where the model's digit differs
    bs = int(c["batch_size"])
    n_batches = (
        len(cp["n_digits"]) * len(cp["m_digits"]) * batches(n / max(1, len(cp["n_digits"]) * len(cp["m_digits"])), bs)
    )
    w = Work(
        calls=n_batches * (2 + rounds),
        tokens=n * prompt + n * answer * (len(settings) + rounds),
        ctx=prompt / 2,
        readouts=n * answer * (len(settings) + rounds),
    )
    if c["estimator"] == "mc_dropout":
        k = int(c["mc_dropout"]["samples"])
        w = plus(
            w, Work(calls=k * n_batches, tokens=k * n * len(settings) * (prompt + answer), ctx=prompt / 2, loads=0)
        )
        w.loads = 1
    w.note = "own-digit rounds: ~1 per 3 answer digits"
    return {"digits_confidence": w}

"""The cost of the models' stages for ``cotlens plan`` (apart from the checks themselves, so an
edit of the plan reruns no stage)."""

from __future__ import annotations

from cotlens.core.cost import Shape, Work

# forwards of the model over the check tokens, per check of PREPARE_CHECKS (counted on the
# tiny and smollm2 models by a forward pre-hook): resid_and_lens 1, hook_shapes 2 (plain and
# with identity edits), decomposition 1, dla 1, attention 1 (through the decoder only)
CHECK_FORWARDS = 6


def check_cost(s: Shape, length: int, rows: int = 2) -> Work:
    """The model work of :func:`cotlens.models.checks.run_checks` for ``cotlens plan``:
    :data:`CHECK_FORWARDS` forwards of ``rows`` x ``length`` check tokens, each over so few
    tokens that it reads every weight once (charged as a decode step's weight read). Read out
    through the unembedding: every position of the five LM forwards and of the lens check's
    two read-outs, and, at the last position of each row, the DLA check's parts (the
    embedding, every head, each block's attention constant and FFN write), its zero baseline
    and its logit constant."""
    n = rows * length
    return Work(
        steps=CHECK_FORWARDS,
        tokens=CHECK_FORWARDS * n,
        ctx=length / 2,
        readouts=(CHECK_FORWARDS - 1 + 2) * n + rows * (1 + s.layers * s.heads + 2 * s.layers + 2),
    )

"""cotlens: mechanistic studies of chain-of-thought reasoning as a cached Snakemake DAG.

One package per study (``circuits``, ``neurons``, ``digits``, ``experts``: prompts,
methods, analysis, figures, stages) above the shared layers (``core``: hooks, generation,
statistics, verdicts; ``models``: loading, adapters, self-checks; ``io``: files and
provenance; ``pipeline``: the CLI and the stage plumbing). Submodules are imported
explicitly (``from cotlens.circuits import prompts``); this package root imports nothing so that the code-dependency tracking in
``cotlens.io.codedeps`` stays exact.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``cotlens.read_vectors``: the one-line reader of vector columns, imported on first
    use (by name, so no stage's code dependencies grow: stages import cotlens.io.parquet)."""
    if name == "read_vectors":
        import importlib

        return importlib.import_module("cotlens.io.parquet").read_vectors
    raise AttributeError(f"module 'cotlens' has no attribute {name!r}")

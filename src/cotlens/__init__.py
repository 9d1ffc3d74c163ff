"""cotlens: mechanistic studies of chain-of-thought reasoning as a cached Snakemake DAG.

Submodules are imported explicitly (``from cotlens.prompts import prontoqa``); this
package root imports nothing so that the code-dependency tracking in
``cotlens.codedeps`` stays exact.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``cotlens.read_vectors``: the one-line reader of vector columns, imported on first
    use (by name, so no stage's code dependencies grow: stages import cotlens.parquet)."""
    if name == "read_vectors":
        import importlib

        return importlib.import_module("cotlens.parquet").read_vectors
    raise AttributeError(f"module 'cotlens' has no attribute {name!r}")

"""cotlens: mechanistic studies of chain-of-thought reasoning as a cached Snakemake DAG.

Submodules are imported explicitly (``from cotlens.prompts import prontoqa``); this
package root imports nothing so that the code-dependency tracking in
``cotlens.codedeps`` stays exact.
"""

__version__ = "0.1.0"

"""Stage entry points of the pipeline itself (comparing runs)."""

"""Figures, one module per study. They read Parquet only (no model, no torch)."""

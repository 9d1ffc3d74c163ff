"""Prompt generators: pure Python, no torch."""

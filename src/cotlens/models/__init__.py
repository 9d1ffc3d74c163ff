"""Model registry, offline preparation, loading and the architecture adapter table."""

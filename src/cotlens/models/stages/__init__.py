"""The model stages: prepare, check, train, build the tiny model."""

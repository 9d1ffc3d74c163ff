"""Stages that read several runs (``results/<run>/``)."""

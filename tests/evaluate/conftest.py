"""Shared fixtures: the BEIR-format fixture dataset and the small real model, loaded once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "minibeir"


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    """The hand-made BEIR-format dataset (30 passages, 8 judged queries, graded qrels)."""
    return FIXTURE


@pytest.fixture(scope="session")
def dataset(fixture_dir: Path):
    """The fixture loaded through the real loader."""
    from tools.evaluate.datasets import load_beir

    return load_beir(fixture_dir)


@pytest.fixture(scope="session")
def embedding_model():
    """The bundled 384-d MiniLM through our inference handler (one load per session)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from tools.evaluate.local import BUNDLED_MODEL, load_embedding_model

    # One thread: the test machines are shared.
    return load_embedding_model(BUNDLED_MODEL, threads=1)

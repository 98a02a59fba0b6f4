"""Texts and comparisons shared by the model-server tests (no fixtures here)."""

from __future__ import annotations

import torch

# A paragraph of ordinary English; repeated, it makes texts longer than the
# bundled model's 256-token window, so truncation is exercised too.
PARAGRAPH = (
    "The committee reviewed the annual report on coastal erosion, noting that "
    "sediment transport along the northern beaches had increased after the "
    "harbour wall was extended, while the southern dunes recovered slowly "
    "thanks to replanting programmes funded by local volunteers. "
)


def long_text(words: int, seed: int = 0) -> str:
    """A deterministic text of about ``words`` words (rotated so texts differ)."""
    base = PARAGRAPH.split()
    rotated = base[seed % len(base) :] + base[: seed % len(base)]
    repeated = (rotated * (words // len(base) + 1))[:words]
    return " ".join(repeated)


SHORT_TEXTS = [
    "how do tides work",
    "capital of France",
    "x",
    "Wie funktioniert die Suche?",
    "",
]
LONG_TEXTS = [long_text(n, seed=n) for n in (40, 120, 260, 400, 700)]


def st_encode(reference: object, texts: list[str]) -> torch.Tensor:
    """sentence-transformers' normalised embeddings as a float32 tensor."""
    vectors = reference.encode(  # type: ignore[attr-defined]
        texts, normalize_embeddings=True, convert_to_tensor=True, batch_size=32
    )
    return vectors.float().cpu()


def row_cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of matching rows."""
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=1)

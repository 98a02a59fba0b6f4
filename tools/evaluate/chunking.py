"""The semantic field's chunking, ported so the local evaluation chunks exactly like the index.

A ``semantic`` field with ``chunking`` enabled splits its text at ingest and
embeds every chunk; a ``neural`` query over it scores a document by its best
chunk. To measure what that buys before deploying it, ``tools.evaluate local``
needs the same chunks, so this module re-implements (reference, not copied)
neural-search 3.7.0.0's algorithms, cited by path:line in
``opensearch-project/neural-search`` at tag ``3.7.0.0``:

* ``chunking: true`` uses one default ``fixed_token_length`` chunker
  (``src/main/java/org/opensearch/neuralsearch/processor/factory/
  SemanticFieldProcessorFactory.java:143-147``, used at
  ``processor/semantic/SemanticFieldProcessor.java:431-433``); a list of
  ``{"algorithm", "parameters"}`` builds one chunker per item
  (``processor/dto/SemanticFieldInfo.java:138-158``) and runs them in order, each one over
  the previous one's chunks (``SemanticFieldProcessor.java:456-472``,
  ``processor/util/ChunkUtils.java:31-70``: an empty string gives no chunk;
  the runtime chunk limit shrinks by each string's chunk count).
* ``fixed_token_length`` (``processor/chunker/FixedTokenLengthChunker.java``):
  defaults ``token_limit`` 384, ``overlap_rate`` 0.0 (at most 0.5),
  ``tokenizer`` ``standard`` (lines 49-51, 54-55); the text is tokenised with
  the analyzer's tokenizer, a chunk runs from a token's start offset to the
  start offset of the token ``token_limit`` further on (so the gap after a
  chunk's last token belongs to it), the first chunk starts at character 0,
  the last runs to the end of the text, and the next chunk starts
  ``token_limit - floor(token_limit * overlap_rate)`` tokens later (lines
  119-156); when the chunk limit is reached, the rest of the text is one
  chunk (lines 138-141).
* ``delimiter`` (``processor/chunker/DelimiterChunker.java:66-90``): split
  after each occurrence of the delimiter (default ``"\\n\\n"``, kept at the
  end of its chunk), the remainder as a last chunk if not empty; at the chunk
  limit the remainder, delimiters included, is the last chunk.
* ``max_chunk_limit`` defaults to 100, ``-1`` disables it
  (``processor/chunker/Chunker.java:28-31, 67-69``).

The ``standard`` tokenizer is Lucene's ``StandardTokenizer``: Unicode text
segmentation word boundaries (UAX #29), emitting the segments that hold a
letter, digit, ideograph, kana, hangul or emoji, and splitting tokens longer
than 255 characters (its default ``maxTokenLength``). We find the boundaries
with the ``regex`` module's ``WORD`` flag (UAX #29 default word boundaries);
Lucene's own grammar was not read here (no Lucene sources on this machine),
so rare scripts may tokenise differently. Only the token *start offsets*
matter for the chunk texts. The other word tokenizers the chunker accepts are
not ported (a clear error says so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import regex

FIXED_TOKEN_LENGTH = "fixed_token_length"  # noqa: S105 - an algorithm name
DELIMITER = "delimiter"
ALGORITHMS = (FIXED_TOKEN_LENGTH, DELIMITER)
DEFAULT_TOKEN_LIMIT = 384  # FixedTokenLengthChunker.java:49
DEFAULT_OVERLAP_RATE = 0.0  # FixedTokenLengthChunker.java:50
MAX_OVERLAP_RATE = 0.5  # FixedTokenLengthChunker.java:55
DEFAULT_TOKENIZER = "standard"  # FixedTokenLengthChunker.java:51
DEFAULT_DELIMITER = "\n\n"  # DelimiterChunker.java:30
DEFAULT_MAX_CHUNK_LIMIT = 100  # Chunker.java:28
DISABLED_MAX_CHUNK_LIMIT = -1  # Chunker.java:31
# index.analyze.max_token_count's default: the _analyze call the chunker makes
# refuses a text with more tokens than this.
DEFAULT_MAX_TOKEN_COUNT = 10_000
STANDARD_MAX_TOKEN_LENGTH = 255  # Lucene StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH

_BOUNDARY = regex.compile(r"\b", flags=regex.WORD | regex.V1)
_TOKEN_CHAR = regex.compile(r"[\p{L}\p{N}\p{Extended_Pictographic}\p{Regional_Indicator}]")


def standard_token_offsets(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of the standard tokenizer's tokens."""
    cuts = sorted({0, len(text), *(m.start() for m in _BOUNDARY.finditer(text))})
    tokens: list[tuple[int, int]] = []
    for start, end in pairwise(cuts):
        if not _TOKEN_CHAR.search(text, start, end):
            continue  # spaces, punctuation: no token
        for piece in range(start, end, STANDARD_MAX_TOKEN_LENGTH):
            tokens.append((piece, min(end, piece + STANDARD_MAX_TOKEN_LENGTH)))
    return tokens


def _limit_reached(produced: int, runtime_limit: int, string_count: int) -> bool:
    # Chunker.java:67-69
    return runtime_limit != DISABLED_MAX_CHUNK_LIMIT and produced + string_count >= runtime_limit


@dataclass(frozen=True)
class FixedTokenLength:
    """``fixed_token_length`` with its parameters (validated like the Java ``parse``)."""

    token_limit: int = DEFAULT_TOKEN_LIMIT
    overlap_rate: float = DEFAULT_OVERLAP_RATE
    tokenizer: str = DEFAULT_TOKENIZER
    max_chunk_limit: int = DEFAULT_MAX_CHUNK_LIMIT
    max_token_count: int = DEFAULT_MAX_TOKEN_COUNT

    def __post_init__(self) -> None:
        if isinstance(self.token_limit, bool) or not isinstance(self.token_limit, int):
            raise ValueError(f"token_limit: {self.token_limit!r}, must be a positive integer")
        if self.token_limit < 1:
            raise ValueError(f"token_limit: {self.token_limit}, must be a positive integer")
        if not 0.0 <= self.overlap_rate <= MAX_OVERLAP_RATE:
            raise ValueError(
                f"overlap_rate: {self.overlap_rate}, must be between 0.0 and {MAX_OVERLAP_RATE}"
            )
        if self.tokenizer != DEFAULT_TOKENIZER:
            raise ValueError(
                f"tokenizer: {self.tokenizer!r}, only 'standard' is ported to the local evaluation"
            )
        _check_chunk_limit(self.max_chunk_limit)

    def chunk(self, content: str, runtime_limit: int, string_count: int) -> list[str]:
        """FixedTokenLengthChunker.chunk (lines 119-156)."""
        tokens = standard_token_offsets(content)
        if len(tokens) > self.max_token_count:
            raise ValueError(
                f"text has {len(tokens)} tokens, more than max_token_count {self.max_token_count}"
            )
        chunks: list[str] = []
        start_token = 0
        overlap = math.floor(self.token_limit * self.overlap_rate)
        while start_token < len(tokens):
            start = 0 if start_token == 0 else tokens[start_token][0]
            if _limit_reached(len(chunks), runtime_limit, string_count):
                chunks.append(content[start:])
                break
            if start_token + self.token_limit >= len(tokens):
                chunks.append(content[start:])
                break
            chunks.append(content[start : tokens[start_token + self.token_limit][0]])
            start_token += self.token_limit - overlap
        return chunks


@dataclass(frozen=True)
class Delimiter:
    """``delimiter`` with its parameters."""

    delimiter: str = DEFAULT_DELIMITER
    max_chunk_limit: int = DEFAULT_MAX_CHUNK_LIMIT

    def __post_init__(self) -> None:
        if not isinstance(self.delimiter, str) or not self.delimiter:
            raise ValueError(f"delimiter: {self.delimiter!r}, must be a non-empty string")
        _check_chunk_limit(self.max_chunk_limit)

    def chunk(self, content: str, runtime_limit: int, string_count: int) -> list[str]:
        """DelimiterChunker.chunk (lines 66-90)."""
        chunks: list[str] = []
        start = 0
        position = content.find(self.delimiter)
        while position != -1:
            if _limit_reached(len(chunks), runtime_limit, string_count):
                break
            end = position + len(self.delimiter)
            chunks.append(content[start:end])
            start = end
            position = content.find(self.delimiter, start)
        if start < len(content):
            chunks.append(content[start:])
        return chunks


Chunker = FixedTokenLength | Delimiter


def _check_chunk_limit(limit: int) -> None:
    # Chunker.java:85-95
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"max_chunk_limit: {limit!r}, must be an integer")
    if limit <= 0 and limit != DISABLED_MAX_CHUNK_LIMIT:
        raise ValueError(f"max_chunk_limit: {limit}, must be positive or -1 to disable it")


@dataclass(frozen=True)
class ChunkingConfig:
    """The chunkers of one ``chunking`` setting, in order (empty: chunking off)."""

    chunkers: tuple[Chunker, ...] = field(default_factory=tuple)

    @property
    def enabled(self) -> bool:
        """Whether the field chunks at all."""
        return bool(self.chunkers)

    def label(self) -> str:
        """A short name for tables, e.g. ``ftl384/0.15``."""
        parts = []
        for c in self.chunkers:
            if isinstance(c, FixedTokenLength):
                parts.append(
                    f"ftl{c.token_limit}" + (f"/{c.overlap_rate:g}" if c.overlap_rate else "")
                )
            else:
                parts.append(f"delim{c.delimiter!r}")
        return "+".join(parts) or "off"

    def chunk(self, text: str) -> list[str]:
        """The chunk texts of one field value (SemanticFieldProcessor.java:456-472).

        With chunking off the whole text is the one chunk (lines 437-440).
        """
        if not self.chunkers:
            return [text]
        chunks: list[str] | None = None
        for chunker in self.chunkers:
            runtime_limit = chunker.max_chunk_limit
            string_count = 1 if chunks is None else len(chunks)
            out: list[str] = []
            for content in [text] if chunks is None else chunks:
                # ChunkUtils.chunkString (lines 31-50)
                if not content:
                    continue
                result = chunker.chunk(content, runtime_limit, string_count)
                string_count -= 1
                if runtime_limit != DISABLED_MAX_CHUNK_LIMIT:
                    runtime_limit -= len(result)
                out.extend(result)
            chunks = out
        return chunks or []


def parse_chunking(value: Any) -> ChunkingConfig:
    """A ``chunking`` value as the semantic field takes it: a boolean or a list of algorithms.

    ``true`` is one default ``fixed_token_length`` chunker; each list item is
    ``{"algorithm": NAME, "parameters": {...}}`` (ChunkingConfig.java:50-71,
    97-137: only those two keys; ``parameters`` optional).
    """
    if isinstance(value, bool):
        return ChunkingConfig((FixedTokenLength(),) if value else ())
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ValueError("chunking: must be either a list of objects or a boolean")
    chunkers: list[Chunker] = []
    for index, item in enumerate(value):
        where = f"chunking[{index}]"
        extra = sorted(set(item) - {"algorithm", "parameters"})
        if extra:
            raise ValueError(f"{where}: unsupported key(s) {', '.join(extra)}")
        algorithm = item.get("algorithm")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"{where}.algorithm: {algorithm!r}, must be one of {list(ALGORITHMS)}")
        params = item.get("parameters", {}) or {}
        if not isinstance(params, Mapping):
            raise ValueError(f"{where}.parameters: must be an object")
        try:
            chunkers.append(_build(algorithm, params))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}.parameters: {exc}") from None
    return ChunkingConfig(tuple(chunkers))


def _build(algorithm: str, params: Mapping[str, Any]) -> Chunker:
    if algorithm == FIXED_TOKEN_LENGTH:
        allowed = {"token_limit", "overlap_rate", "tokenizer", "max_chunk_limit"}
        cls: type[FixedTokenLength] | type[Delimiter] = FixedTokenLength
    else:
        allowed = {"delimiter", "max_chunk_limit"}
        cls = Delimiter
    extra = sorted(set(params) - allowed)
    if extra:
        raise ValueError(f"unknown parameter(s) {', '.join(extra)} for {algorithm}")
    kwargs = dict(params)
    if "overlap_rate" in kwargs:
        kwargs["overlap_rate"] = float(kwargs["overlap_rate"])
    return cls(**kwargs)


def chunk_corpus(texts: Sequence[str], config: ChunkingConfig) -> tuple[list[str], list[int]]:
    """All chunks of ``texts`` flattened, and for each chunk the index of its text."""
    chunks: list[str] = []
    owners: list[int] = []
    for index, text in enumerate(texts):
        for chunk in config.chunk(text):
            chunks.append(chunk)
            owners.append(index)
    return chunks, owners

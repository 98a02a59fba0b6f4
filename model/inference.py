"""Asymmetric text-embedding handler for the SageMaker Hugging Face inference toolkit.

The Hugging Face PyTorch inference DLC imports this module as ``code/inference.py``
and calls ``model_fn`` once per worker, then ``transform_fn`` for every request.
OpenSearch (neural-search / ML Commons) sends
``{"texts": [...], "content_type": "query" | "passage"}`` and leaves the E5
``query: `` / ``passage: `` prefix to us, so the prefix is chosen here, from
configuration, so that another asymmetric model family (or a symmetric one with
no prefix at all) needs no code change.

Two properties matter more than anything else:

* Exactness. The vector of a text must not depend on the other texts in its
  request (semantic-field ingest sends 10 documents per request). So pooling is
  the attention-masked mean, never the plain mean over padded positions, and
  vectors are L2-normalised like sentence-transformers' ``normalize_embeddings``.
* Speed on CPU. Texts are ordered by token length and run in sub-batches bounded
  by a padded-token budget, so short texts are not padded to the longest one;
  results are put back in input order, because neural-search matches vectors to
  inputs by position.

Every request is refused or bounded before any model work: ``transform_fn``
checks ``Accept``, ``Content-Type``, the body's encoding, JSON and shape, then
the request's size in characters (before tokenising) and in tokens after
truncation (before the encoder runs), so the slowest request a configuration
accepts is known in advance (limits per instance type: stacks/embedding_endpoint.py,
figures: docs/model-server.md). ``transform_fn`` rather than ``input_fn`` /
``predict_fn`` / ``output_fn`` because the toolkit calls ``output_fn`` only after
the model has run, too late to refuse a bad ``Accept``.

Error handling follows the toolkit: ``HuggingFaceHandlerService.handle`` turns
*any* exception raised by these functions into ``PredictionException(str(exc),
400)``, which Multi Model Server returns as HTTP 400 with that message. Client
mistakes therefore raise :class:`RequestError`, whose message starts with the
name of the offending field, and the worker keeps serving.

This module is runtime code: it imports only the standard library, torch and
transformers (all in the DLC), never anything from this repository.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

try:  # model/fast_path.py ships beside this file as code/fast_path.py
    from . import fast_path
except ImportError:  # imported as the top-level module ``inference`` (the DLC)
    import fast_path  # type: ignore[no-redef]

logger = logging.getLogger(__name__)

# Environment variables read by model_fn (documented in docs/model-server.md).
ENV_QUERY_PREFIX = "EMBEDDING_QUERY_PREFIX"
ENV_PASSAGE_PREFIX = "EMBEDDING_PASSAGE_PREFIX"
ENV_MAX_TEXTS = "EMBEDDING_MAX_TEXTS"
ENV_MAX_TEXT_CHARS = "EMBEDDING_MAX_TEXT_CHARS"
ENV_MAX_TOKENS = "EMBEDDING_MAX_TOKENS"
ENV_TOKEN_BUDGET = "EMBEDDING_TOKEN_BUDGET"  # noqa: S105 - a variable name, not a secret
ENV_MAX_REQUEST_CHARS = "EMBEDDING_MAX_REQUEST_CHARS"
ENV_MAX_REQUEST_TOKENS = "EMBEDDING_MAX_REQUEST_TOKENS"
ENV_THREADS = "EMBEDDING_THREADS"
# Set by SageMaker users to choose the number of MMS workers; read to share cores.
ENV_MMS_WORKERS = "SAGEMAKER_MODEL_SERVER_WORKERS"

DEFAULT_QUERY_PREFIX = "query: "
DEFAULT_PASSAGE_PREFIX = "passage: "
# neural-search sends 10 texts per ingest request by default; ML Commons _predict
# calls can send more. 256 leaves room while bounding one request's work.
DEFAULT_MAX_TEXTS = 256
# Texts longer than the model's window are truncated, not refused; this cap only
# stops pathological payloads from spending CPU on tokenising megabytes.
DEFAULT_MAX_TEXT_CHARS = 100_000
# Per-request budgets, so the worst accepted request has a known duration.
# Tokens after truncation, special tokens and prefix included: the encoder's
# work. The endpoint stack always sets it per instance type from the measured
# throughput (stacks/embedding_endpoint.py, docs/model-server.md "Request
# budget"); unset, 10 full 512-token windows, neural-search's ingest batch and
# the stack's floor for the slowest family.
DEFAULT_MAX_REQUEST_TOKENS = 5120
# Characters before tokenising: the tokenizer reads a whole text before
# truncating it, at roughly 0.7 M characters/s on one loaded thread here.
DEFAULT_MAX_REQUEST_CHARS = 1_000_000
# A valid request nests three levels ({"parameters": {"texts": [...]}}).
MAX_JSON_DEPTH = 8
# Padded tokens per forward pass. Measured on 2 CPU threads (see the benchmark):
# past a few thousand tokens a bigger batch gains nothing and costs memory.
DEFAULT_TOKEN_BUDGET = 4096
# Fixed cost of one forward pass per torch thread (module calls, thread
# fork/join), in tokens of work: how much padding a text may cost before running
# it in a pass of its own wins. Measured: 32 to 512 give the same throughput at
# 1 thread; with 2 threads on a busy CPU larger values win, hence per thread.
FORWARD_OVERHEAD_TOKENS = 64
GPU_PASS_OVERHEAD_TOKENS = 4096

CONTENT_TYPES = ("query", "passage")
JSON_MEDIA_TYPE = "application/json"


class RequestError(ValueError):
    """A client mistake in one request.

    A ``ValueError`` so that the toolkit's catch-all maps it to HTTP 400; the
    message starts with the field name (``texts``, ``texts[3]``,
    ``content_type``, ``Content-Type``, ``Accept``, ``body``, ``parameters``)
    because the caller, often OpenSearch relaying the message, needs to know
    what to fix.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class HandlerConfig:
    """Configuration of one worker, read once from environment variables.

    Validated at model load so that a misconfigured endpoint fails at start-up,
    with the variable's name in the log, rather than on the first request.
    """

    query_prefix: str = DEFAULT_QUERY_PREFIX
    passage_prefix: str = DEFAULT_PASSAGE_PREFIX
    max_texts: int = DEFAULT_MAX_TEXTS
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    max_request_chars: int = DEFAULT_MAX_REQUEST_CHARS
    max_request_tokens: int = DEFAULT_MAX_REQUEST_TOKENS
    max_tokens: int | None = None
    token_budget: int = DEFAULT_TOKEN_BUDGET
    threads: int = 1
    backend: str = fast_path.DEFAULT_BACKEND

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HandlerConfig:
        """Build the configuration from ``environ`` (default: ``os.environ``).

        An empty prefix variable means "no prefix" (a symmetric model), which is
        why prefixes are read with ``get`` and not ``or``-defaulted.
        """
        env = os.environ if environ is None else environ
        return cls(
            query_prefix=env.get(ENV_QUERY_PREFIX, DEFAULT_QUERY_PREFIX),
            passage_prefix=env.get(ENV_PASSAGE_PREFIX, DEFAULT_PASSAGE_PREFIX),
            max_texts=_positive_int(env, ENV_MAX_TEXTS, DEFAULT_MAX_TEXTS),
            max_text_chars=_positive_int(env, ENV_MAX_TEXT_CHARS, DEFAULT_MAX_TEXT_CHARS),
            max_request_chars=_positive_int(env, ENV_MAX_REQUEST_CHARS, DEFAULT_MAX_REQUEST_CHARS),
            max_request_tokens=_positive_int(
                env, ENV_MAX_REQUEST_TOKENS, DEFAULT_MAX_REQUEST_TOKENS
            ),
            max_tokens=_positive_int(env, ENV_MAX_TOKENS, None),
            token_budget=_positive_int(env, ENV_TOKEN_BUDGET, DEFAULT_TOKEN_BUDGET),
            threads=_positive_int(env, ENV_THREADS, None) or default_threads(env),
            backend=fast_path.parse_backend(env.get(fast_path.ENV_BACKEND)),
        )

    def prefix_for(self, content_type: str) -> str:
        """Return the prefix for a normalised content type (``query``/``passage``)."""
        return self.query_prefix if content_type == "query" else self.passage_prefix


def _positive_int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value}")
    return value


def available_cores() -> int:
    """Cores this process may run on (affinity-aware, unlike ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads(environ: Mapping[str, str] | None = None) -> int:
    """Intra-op threads per worker so that all MMS workers together fill the cores.

    Multi Model Server starts ``SAGEMAKER_MODEL_SERVER_WORKERS`` workers, or one
    per core when that is unset; each worker is a separate process with its own
    torch thread pool, so giving each of them every core would oversubscribe the
    CPU and make every request slower.
    """
    env = os.environ if environ is None else environ
    cores = available_cores()
    workers = _positive_int(env, ENV_MMS_WORKERS, None) or cores
    return max(1, cores // workers)


@dataclass(frozen=True)
class EmbeddingRequest:
    """A validated request: texts (not yet prefixed) and the normalised content type."""

    texts: list[str]
    content_type: str


@dataclass
class EmbeddingModel:
    """What ``model_fn`` returns: everything ``transform_fn`` needs, loaded once."""

    tokenizer: PreTrainedTokenizerBase
    model: torch.nn.Module
    config: HandlerConfig
    max_tokens: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # last_hidden_state from padded ids (fast_path.build_encoder); None: the module itself.
    encoder: fast_path.Encoder | None = None

    @property
    def dimension(self) -> int:
        """Width of the vectors this model produces."""
        return int(self.model.config.hidden_size)


# --------------------------------------------------------------------------- model_fn


def model_fn(model_dir: str) -> EmbeddingModel:
    """Load tokenizer and encoder from ``model_dir``, configured from the environment.

    ``model_dir`` is ``/opt/ml/model`` when the weights ship in model.tar.gz, or
    the toolkit's download of ``HF_MODEL_ID`` (a Hub snapshot directory) when
    they do not; both are plain Hugging Face model directories, so one code path
    loads both. The signature has exactly one parameter on purpose: the toolkit
    counts parameters and would pass its MMS context as a second one.
    """
    return load_model(model_dir, HandlerConfig.from_env())


def load_model(model_dir: str | Path, cfg: HandlerConfig) -> EmbeddingModel:
    """Load with an explicit configuration (what tests and the benchmark call)."""
    torch.set_num_threads(cfg.threads)
    # A GPU instance type gets the GPU; this path is not exercised here (the
    # CPU-only machines that run the tests have none).
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir))
    model.eval()
    model.to(device)
    encoder = None
    if cfg.backend != fast_path.DEFAULT_BACKEND:
        if device.type != "cpu":
            raise ValueError(f"{fast_path.ENV_BACKEND}: {cfg.backend} is a CPU backend")
        encoder = fast_path.build_encoder(cfg.backend, model, cfg.threads)
    loaded = EmbeddingModel(
        tokenizer=tokenizer,
        model=model,
        config=cfg,
        max_tokens=resolve_max_tokens(Path(model_dir), tokenizer, model.config, cfg.max_tokens),
        device=device,
        encoder=encoder,
    )
    # One tiny pass at load time so the first real request does not pay for
    # lazy initialisation inside torch.
    embed(loaded, ["warm-up"])
    logger.info(
        "embedding model loaded from %s: dim=%d max_tokens=%d threads=%d backend=%s "
        "request budget %d tokens / %d characters",
        model_dir,
        loaded.dimension,
        loaded.max_tokens,
        cfg.threads,
        cfg.backend,
        cfg.max_request_tokens,
        cfg.max_request_chars,
    )
    return loaded


def resolve_max_tokens(
    model_dir: Path, tokenizer: PreTrainedTokenizerBase, model_config: Any, override: int | None
) -> int:
    """Token window per text, special tokens included.

    sentence-transformers truncates at ``max_seq_length`` from
    ``sentence_bert_config.json`` (256 for all-MiniLM-L6-v2, 512 for E5), which
    can be shorter than the tokenizer's limit; using the same window is what
    makes our vectors agree with ``SentenceTransformer.encode``. The window never
    exceeds what the position embeddings allow, whatever the override says.
    """
    candidates: list[int] = []
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.is_file():
        st_max = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        if isinstance(st_max, int) and st_max > 0:
            candidates.append(st_max)
    tok_max = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a limit report a huge sentinel (int(1e30)).
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        candidates.append(tok_max)
    positions = getattr(model_config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        if getattr(model_config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
            positions -= 2  # RoBERTa-style position ids start after the padding index
        candidates.append(positions)
    window = min(candidates) if candidates else 512
    if override is not None:
        window = min(override, positions) if isinstance(positions, int) else override
    return window


# --------------------------------------------------------------------------- transform_fn


def _install_bytes_body() -> None:
    """Make the toolkit hand ``application/json`` bodies over as bytes.

    ``HuggingFaceHandlerService.handle`` decodes a body whose Content-Type is
    exactly ``application/json`` (``content_types.UTF8_TYPES``) before calling
    us, so a non-UTF-8 body would fail there with a bare codec message. The
    toolkit has imported that module before it imports this one (in the
    worker), so dropping JSON from the list here moves the decoding into
    :func:`decode_body`, which names the problem. Nothing else in the toolkit
    reads the list once ``transform_fn`` replaces its own pre-processing.
    Outside the toolkit the module is absent and this does nothing.
    """
    types = sys.modules.get("sagemaker_huggingface_inference_toolkit.content_types")
    utf8_types = getattr(types, "UTF8_TYPES", None)
    if isinstance(utf8_types, list) and JSON_MEDIA_TYPE in utf8_types:
        utf8_types.remove(JSON_MEDIA_TYPE)


_install_bytes_body()


def transform_fn(
    model: EmbeddingModel,
    input_data: str | bytes | bytearray,
    content_type: str | None,
    accept: str | None,
) -> str:
    """One request, every check first: headers, body, shape, size, then the model.

    What the toolkit calls per request (``handle`` -> ``transform_fn``). The
    order is the point: nothing that costs model time runs before the request
    is known to be answerable and inside the configured budget.
    """
    check_accept(accept)
    request = decode_request(input_data, content_type)
    ids = tokenize_within_budget(model, request)
    return encode_response(embed_ids(model, ids))


def check_accept(accept: str | None) -> None:
    """Refuse an ``Accept`` that does not allow JSON, before any work.

    The toolkit replaces a missing or ``*/*`` Accept with ``application/json``.
    """
    if accept is not None and not _accepts_json(accept):
        raise RequestError("Accept", f"{accept} is not supported; accept {JSON_MEDIA_TYPE}")


def decode_request(
    input_data: str | bytes | bytearray, content_type: str | None
) -> EmbeddingRequest:
    """Decode and validate one request body (no configuration needed).

    A missing Content-Type is read as JSON: SageMaker and ML Commons
    connectors without a ``headers`` block may send none, and refusing those
    would break ingest for no benefit.
    """
    if content_type is not None and _media_type(content_type) != JSON_MEDIA_TYPE:
        raise RequestError(
            "Content-Type", f"{content_type} is not supported; send {JSON_MEDIA_TYPE}"
        )
    return parse_request(parse_json(decode_body(input_data)))


def decode_body(input_data: str | bytes | bytearray) -> str:
    """The body as text; a body that is not UTF-8 is named with the byte offset."""
    if not isinstance(input_data, bytes | bytearray):
        return input_data
    try:
        return bytes(input_data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(
            "body", f"is not valid UTF-8 ({exc.reason} at byte {exc.start}); send UTF-8 JSON"
        ) from None


def _parse_int(digits: str) -> int:
    """``int`` for JSON integers, with Python's digit limit named as a client error."""
    limit = sys.get_int_max_str_digits()
    if limit and len(digits.lstrip("-")) > limit:
        raise RequestError("body", f"has an integer of {len(digits)} digits; at most {limit}")
    return int(digits)


def parse_json(text: str) -> Any:
    """``json.loads`` with its three unnamed failures turned into named ones."""
    try:
        payload = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise RequestError(
            "body", f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise RequestError(
            "body", f"JSON is nested too deep (at most {MAX_JSON_DEPTH} levels)"
        ) from None
    if _depth(payload, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise RequestError("body", f"JSON is nested too deep (at most {MAX_JSON_DEPTH} levels)")
    return payload


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value, counted no further than ``limit + 1``."""
    if limit < 0 or not isinstance(value, dict | list):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def parse_request(payload: Any) -> EmbeddingRequest:
    """Validate a decoded request object.

    Accepts ``{"texts": [...], "content_type": ...}`` and the same wrapped as
    ``{"parameters": {...}}`` (how ML Commons blueprints show it). The content
    type is case-insensitive because neural-search sends lowercase and an ML
    Commons ``_predict`` call uppercase. Limits that depend on configuration
    are checked in :func:`check_size`, which has the loaded configuration.
    """
    if not isinstance(payload, dict):
        raise RequestError("body", f"must be a JSON object, got {_json_type(payload)}")
    if "texts" not in payload and "parameters" in payload:
        payload = payload["parameters"]
        if not isinstance(payload, dict):
            raise RequestError("parameters", f"must be a JSON object, got {_json_type(payload)}")

    if "texts" not in payload:
        raise RequestError("texts", "is missing; send a non-empty list of strings")
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise RequestError("texts", f"must be a list of strings, got {_json_type(texts)}")
    if not texts:
        raise RequestError("texts", "must not be empty")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(f"texts[{index}]", f"must be a string, got {_json_type(text)}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            # JSON allows "\ud800" escapes; such a text has no UTF-8 form and
            # the Rust tokenizer would fail on it with an unnamed error.
            raise RequestError(
                f"texts[{index}]",
                f"has a lone surrogate \\u{ord(text[exc.start]):04x} at character {exc.start}",
            ) from None

    if "content_type" not in payload:
        raise RequestError("content_type", "is missing; send 'query' or 'passage'")
    raw_type = payload["content_type"]
    normalised = raw_type.strip().lower() if isinstance(raw_type, str) else None
    if normalised not in CONTENT_TYPES:
        shown = json.dumps(raw_type) if isinstance(raw_type, str) else _json_type(raw_type)
        raise RequestError("content_type", f"{shown} is not one of query, passage (any case)")
    return EmbeddingRequest(texts=texts, content_type=normalised)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --------------------------------------------------------------------------- budget


def check_size(request: EmbeddingRequest, cfg: HandlerConfig) -> None:
    """Text count and characters, before tokenising (tokenising costs time too)."""
    if len(request.texts) > cfg.max_texts:
        raise RequestError(
            "texts",
            f"has {len(request.texts)} texts; at most {cfg.max_texts} per request "
            f"({ENV_MAX_TEXTS})",
        )
    total = 0
    for index, text in enumerate(request.texts):
        if len(text) > cfg.max_text_chars:
            raise RequestError(
                f"texts[{index}]",
                f"has {len(text)} characters; at most {cfg.max_text_chars} ({ENV_MAX_TEXT_CHARS})",
            )
        total += len(text)
    if total > cfg.max_request_chars:
        raise RequestError(
            "texts",
            f"has {total} characters in all; the request budget is {cfg.max_request_chars} "
            f"({ENV_MAX_REQUEST_CHARS}); split the request",
        )


def tokenize_within_budget(model: EmbeddingModel, request: EmbeddingRequest) -> list[list[int]]:
    """Prefix and tokenise (truncated to the window), refusing an over-budget request.

    The token count is taken after truncation, special tokens included, which
    is exactly the encoder's input: the model has not run yet when this refuses.
    """
    check_size(request, model.config)
    prefix = model.config.prefix_for(request.content_type)
    ids = tokenize(model, [prefix + text for text in request.texts])
    total = sum(len(row) for row in ids)
    budget = model.config.max_request_tokens
    if total > budget:
        raise RequestError(
            "texts",
            f"has {total} tokens after truncation to {model.max_tokens} per text; the request "
            f"budget is {budget} ({ENV_MAX_REQUEST_TOKENS}); split the request",
        )
    return ids


def embed_request(request: EmbeddingRequest, model: EmbeddingModel) -> torch.Tensor:
    """Budget-checked embedding of a validated request (for in-process callers).

    Returns a float32 tensor ``[len(texts), dim]`` of L2-normalised rows, in
    input order.
    """
    return embed_ids(model, tokenize_within_budget(model, request))


def plan_batches(
    lengths: Sequence[int], token_budget: int, overhead_tokens: int = FORWARD_OVERHEAD_TOKENS
) -> list[list[int]]:
    """Group text indices into sub-batches of similar length, at least estimated cost.

    Texts are sorted longest first and cut into contiguous groups; each group
    is padded to its first (longest) member. The cut points minimise the sum
    over groups of ``overhead_tokens + size x width x (1 + width / 2300)``:
    padded tokens, their attention share (for a 384-wide encoder, attention
    costs about ``width / 2300`` of the dense layers per token), plus a fixed
    cost per forward pass expressed in tokens. So near-equal lengths share a
    pass, and a short text is not padded to a long one just to save a pass.
    A group never exceeds ``token_budget`` padded tokens unless it is a single
    text. Exact dynamic programming over the sorted lengths; requests are
    small (neural-search sends 10 texts), so O(n^2) is microseconds.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    widths = [max(1, lengths[i]) for i in order]
    count = len(widths)
    best = [0.0] + [float("inf")] * count
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        for start in range(end - 1, -1, -1):
            size, width = end - start, widths[start]
            if size > 1 and size * width > token_budget:
                break  # earlier starts are wider still
            cost = best[start] + overhead_tokens + size * width * (1 + width / 2300)
            if cost < best[end]:
                best[end], cut[end] = cost, start
    batches: list[list[int]] = []
    end = count
    while end > 0:
        batches.append(order[cut[end] : end])
        end = cut[end]
    batches.reverse()
    return batches


def tokenize(model: EmbeddingModel, texts: Sequence[str]) -> list[list[int]]:
    """Token ids per text, truncated to the model's window, unpadded."""
    encoded = model.tokenizer(
        list(texts),
        truncation=True,
        max_length=model.max_tokens,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return list(encoded["input_ids"])


def embed(model: EmbeddingModel, texts: Sequence[str]) -> torch.Tensor:
    """Embed already-prefixed texts (no request budget: callers inside this repo)."""
    return embed_ids(model, tokenize(model, texts))


def embed_ids(model: EmbeddingModel, ids: Sequence[Sequence[int]]) -> torch.Tensor:
    """Embed token ids: length-ordered sub-batches, masked mean, L2 norm.

    Tokenising once without padding gives each text's true length, which both
    plans the sub-batches and lets us pad each sub-batch only to its own
    longest member.
    """
    tokenizer = model.tokenizer
    lengths = [len(row) for row in ids]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = torch.empty((len(ids), model.dimension), dtype=torch.float32)
    with torch.inference_mode():
        # On a GPU a pass costs kernel launches, not tokens: batch generously.
        per_pass = GPU_PASS_OVERHEAD_TOKENS if model.device.type != "cpu" else 0
        overhead = per_pass or FORWARD_OVERHEAD_TOKENS * model.config.threads
        for batch in plan_batches(lengths, model.config.token_budget, overhead):
            width = max(lengths[i] for i in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, index in enumerate(batch):
                input_ids[row, : lengths[index]] = torch.tensor(ids[index], dtype=torch.long)
                mask[row, : lengths[index]] = 1
            input_ids, mask = input_ids.to(model.device), mask.to(model.device)
            if model.encoder is not None:
                hidden = model.encoder(input_ids, mask)
            else:
                hidden = model.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            out[batch] = masked_mean_normalised(hidden.float(), mask).cpu()
    return out


def masked_mean_normalised(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens only (E5's ``average_pool``), then unit length.

    Averaging the padding too would make a text's vector depend on the
    longest text in its batch.
    """
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(summed / counts, p=2, dim=1)


# --------------------------------------------------------------------------- response


def encode_response(prediction: torch.Tensor) -> str:
    """A bare JSON array of vectors, one per input text, in order.

    The connector needs no post-processing function for this shape.
    """
    return json.dumps(prediction.tolist(), allow_nan=False)


def _accepts_json(accept: str) -> bool:
    media = {_media_type(part) for part in accept.split(",")}
    return bool(media & {JSON_MEDIA_TYPE, "*/*", "application/*", ""})

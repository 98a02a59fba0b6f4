"""Contract checks against the official OpenSearch OpenAPI specification.

Why this exists: the custom-resource handlers talk to OpenSearch and ML Commons
through hand-built REST calls, and the lifecycle tests drive them against an
in-process emulator.  If both the handlers and the emulator were written from
memory, a wrong field name or type would pass every test and fail only against
a real domain.  Checking every request and every emulated response against the
published specification (``opensearch-openapi.yaml``, OpenSearch 3.7) removes
that blind spot: a request the specification does not define fails the test.

Usage::

    spec = OpenSearchSpec.load()          # parsed once per process, cached on disk
    op = spec.validate_request("POST", "/_plugins/_ml/models/_register", None, body)
    spec.validate_response("POST", "/_plugins/_ml/models/_register", 200, {...})
    spec.validate_exchange("GET", "https://host/_cluster/health?wait_for_status=green",
                           None, None, 200, health_body)

Policies worth knowing (each is explained where it is implemented):

* Paths match the most specific template (literal segments beat ``{params}``,
  left to right).  If that template does not define the method, the request
  fails even when a less specific template would accept it: ``PUT
  /_plugins/_ml/connectors/_create`` is a bug, not "update connector _create".
* Request bodies are checked *strictly* by default: an object property the
  specification does not declare is an error (typos such as ``conector_id``
  would otherwise pass, because most of the specification's schemas are open).
  Responses are checked as the specification is written (open), because real
  servers add fields; pass ``strict=True`` to check an emulator more tightly.
* A few gaps of the specification that this project depends on are filled by
  :data:`SUPPLEMENTS` (each with its reason); ``OpenSearchSpec.load(
  supplements=False)`` gives the bare specification.
* ``oneOf`` is checked as ``anyOf`` (the specification writes overlapping unions
  as oneOf), except where an OpenAPI ``discriminator`` picks the branch.
* Responses with an undocumented 4xx/5xx status are checked against the
  common error schema (``_common___ErrorResponseBase``, or the security
  plugin's ``security._common___Error`` for security operations); the AWS
  front end's ``{"Message": ...}`` is accepted for 403, 429 and 5xx.  An
  undocumented 1xx/2xx/3xx status is an error.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match, relevance
from jsonschema.validators import extend
from referencing import Registry
from referencing.jsonschema import DRAFT202012

__all__ = [
    "SHARED_SPEC",
    "SPEC_ENV_VAR",
    "SUPPLEMENTS",
    "VENDORED_SPEC",
    "OpenSearchSpec",
    "Operation",
    "SpecViolation",
    "Supplement",
    "validate_exchange",
]

SPEC_ENV_VAR = "OPENSEARCH_API_SPEC"
"""Environment variable that points the checks at another copy of the specification."""

_SUPPORT_DIR = Path(__file__).resolve().parent
_REPO_ROOT = _SUPPORT_DIR.parents[1]
VENDORED_SPEC = _SUPPORT_DIR / "opensearch-api-spec" / "opensearch-openapi.yaml"
"""The copy in the repository, so that a fresh clone (CI) needs nothing outside it."""
SHARED_SPEC = _REPO_ROOT.parent / "shared" / "opensearch-api-spec" / "opensearch-openapi.yaml"
"""The team's shared copy, when this checkout sits next to it (used only to detect drift)."""
_CACHE_DIR = _REPO_ROOT / "build" / "opensearch-spec-cache"
# Bump when the parsed form written to the cache changes meaning.
_CACHE_FORMAT = 1

_SPEC_URI = "urn:opensearch-openapi"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_STRICT_KEYWORD = "x-closed"
"""Marker this module adds to schema positions where undeclared properties are errors."""
_MAX_LISTED_PROBLEMS = 6


class SpecViolation(AssertionError):
    """A request or response that the OpenSearch specification does not allow.

    It subclasses ``AssertionError`` so that pytest reports it as a failed
    check, with the message naming the operation, where the problem is
    (``path``, ``query``, ``body``, ``response``), the field (a JSON path such as
    ``$.model_config.additional_config.is_asymmetric``) and what was wrong.
    Emulator code must not swallow it with a broad ``except``.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        operation: Operation | None = None,
        location: str = "",
        field_path: str = "",
        problems: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.operation = operation
        self.location = location
        self.field_path = field_path
        self.problems = tuple(problems) or (message,)


@dataclass(frozen=True)
class Operation:
    """One operation of the specification, as matched for a concrete request."""

    method: str
    """Upper-case HTTP method."""
    template: str
    """The path template in the specification, e.g. ``/_plugins/_ml/models/{model_id}``."""
    operation_id: str
    """E.g. ``ml.get_model.0`` (the suffix tells apart one group's path variants)."""
    group: str
    """``x-operation-group``, e.g. ``ml.get_model``: stable across path variants."""
    path_params: Mapping[str, str] = field(default_factory=dict)
    """Values taken from the concrete path, percent-decoded."""
    version_added: str | None = None
    distributions_excluded: tuple[str, ...] = ()
    """E.g. ``("amazon-managed", "amazon-serverless")``: the spec's claim, not enforced."""

    def __str__(self) -> str:
        return f"{self.method} {self.template} ({self.group})"


@dataclass(frozen=True)
class Supplement:
    """A documented addition to the specification where it lags the server.

    ``pointer`` is a JSON pointer to an object schema in the document;
    ``properties`` are added to (or replace entries of) its ``properties``;
    ``not_required`` names leave its ``required`` list.
    """

    pointer: str
    properties: Mapping[str, Any]
    reason: str
    not_required: tuple[str, ...] = ()
    """Names removed from the schema's ``required`` list."""


SUPPLEMENTS: tuple[Supplement, ...] = (
    Supplement(
        pointer="/components/schemas/ml._common___AdditionalConfig",
        properties={
            "is_asymmetric": {"type": "boolean"},
            "model_family": {"type": "string"},
            "query_prefix": {"type": "string"},
            "passage_prefix": {"type": "string"},
        },
        reason=(
            "Asymmetric remote models (OpenSearch 3.5+) are configured through these keys of "
            "model_config.additional_config (DESIGN.md; the OpenSearch blog in "
            "shared/reference); the 3.7 specification declares only space_type. DESIGN.md "
            "requires is_asymmetric to be a JSON boolean, so it is typed here."
        ),
    ),
    Supplement(
        pointer="/components/requestBodies/ml.update_connector/content/application~1json/schema",
        properties={
            "description": {"type": "string"},
            "client_config": {"$ref": "#/components/schemas/ml._common___ClientConfig"},
        },
        reason=(
            "ml-commons parses the update-connector body with the create parser "
            "(MLCreateConnectorInput.parse(parser, true)), so description and client_config "
            "(retries, backoff, connections) can be changed in place; the specification's "
            "update body omits both."
        ),
    ),
    Supplement(
        pointer="/components/requestBodies/ml.update_model/content/application~1json/schema",
        properties={"description": {"type": "string"}},
        reason=(
            "ml-commons MLUpdateModelInput.parse reads 'description'; the specification's "
            "update-model body omits it (unknown keys are silently skipped by the server, "
            "which is why strict checking matters)."
        ),
    ),
    Supplement(
        pointer="/components/schemas/ml._common___Model",
        properties={
            "description": {"type": "string"},
            "connector_id": {"type": "string"},
            "last_deployed_time": {"type": "integer", "format": "int64"},
            "auto_redeploy_retry_times": {"type": "integer", "format": "int64"},
            "planning_worker_node_count": {"type": "number"},
            "current_worker_node_count": {"type": "number"},
            "planning_worker_nodes": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/_common___NodeIds"},
            },
            "deploy_to_all_nodes": {"type": "boolean"},
        },
        reason=(
            "GET /_plugins/_ml/models/{id} returns the stored model document, including "
            "connector_id and description for a remote model; the specification's Model "
            "schema omits fields that its own search-hit schema (ml._common___Source) "
            "declares for the same document. Types are copied from there. Matters only "
            "for strict response checks."
        ),
    ),
    Supplement(
        pointer="/components/schemas/ml._common___GetConnectorResponse",
        properties={"client_config": {"$ref": "#/components/schemas/ml._common___ClientConfig"}},
        reason=(
            "GET /_plugins/_ml/connectors/{id} returns the client_config it was created "
            "with; the response schema omits it. Matters only for strict response checks."
        ),
    ),
    Supplement(
        pointer="/components/requestBodies/ml.predict/content/application~1json/schema",
        properties={
            "parameters": {
                "type": "object",
                "properties": {"content_type": {"type": "string"}},
                "additionalProperties": True,
            }
        },
        reason=(
            "POST /_plugins/_ml/_predict/text_embedding/{model_id} takes "
            "parameters.content_type (ml-commons AsymmetricTextEmbeddingParameters, "
            "QUERY/PASSAGE); the specification does not declare 'parameters' for this body."
        ),
    ),
    Supplement(
        pointer="/components/requestBodies/ml.predict_model/content/application~1json/schema",
        properties={"parameters": {"type": "object", "additionalProperties": True}},
        reason=(
            "The specification allows only string values in parameters, but ml-commons "
            "parses remote-model parameters with StringUtils.getParameterMap, which turns "
            "lists and objects (e.g. {'texts': [...]}) into JSON text: a list is valid."
        ),
    ),
    Supplement(
        pointer="/components/schemas/ml._common___PredictModelOutput",
        properties={
            "result": {"type": "string"},
            "dataAsMap": {"type": "object", "additionalProperties": True},
        },
        not_required=("data",),
        reason=(
            "A remote model without a post-process function answers _predict with "
            '{"name": "response", "dataAsMap": {...the endpoint\'s JSON...}} and no "data" '
            "(ml-commons ModelTensor; the ML Commons documentation's remote-model examples). "
            "The specification requires data and does not declare dataAsMap."
        ),
    ),
    Supplement(
        pointer="/components/schemas/ml._common___PredictModelResult",
        properties={"status_code": {"type": "integer"}},
        reason="Remote-model results carry the endpoint's HTTP status_code (ModelTensors).",
    ),
    Supplement(
        pointer="/components/schemas/ml._common___Output",
        properties={"dataAsMap": {"type": "object", "additionalProperties": True}},
        reason=(
            "The specification types dataAsMap as a streaming chunk {content, is_last}; for "
            "predict it holds the remote endpoint's JSON, any keys. Matters only for strict "
            "response checks."
        ),
    ),
)


# --------------------------------------------------------------------------- loading


def _default_spec_path() -> Path:
    override = os.environ.get(SPEC_ENV_VAR)
    return Path(override).expanduser() if override else VENDORED_SPEC


def _read_document(path: Path) -> tuple[dict[str, Any], str]:
    """Parse the specification, going through a JSON cache keyed by content hash.

    Why: PyYAML needs about 3 s for this 2.8 MB file even with libyaml, and
    every pytest-xdist worker loads it.  JSON parses the same data in a few
    tens of milliseconds.  The cache lives in the git-ignored ``build/`` and is
    an optimisation only: any failure to read or write it falls back to YAML.
    """
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    digest = hashlib.sha256(raw).hexdigest()
    cache_file = _CACHE_DIR / f"{digest[:32]}-v{_CACHE_FORMAT}.json"
    try:
        return json.loads(cache_file.read_bytes()), digest
    except (OSError, ValueError):
        pass
    import yaml  # only on a cache miss: importing and parsing YAML is the slow path

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    parsed = yaml.load(raw, Loader=loader)  # noqa: S506 - a safe loader, chosen above
    # One JSON round trip makes the cached and uncached documents identical
    # (YAML may produce non-string keys or non-JSON scalars).
    text = json.dumps(parsed, default=str)
    try:
        _CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=_CACHE_DIR, delete=False, suffix=".tmp") as f:
            f.write(text)
        os.chmod(f.name, 0o644)  # mkstemp makes it private; it is no secret
        os.replace(f.name, cache_file)  # atomic: concurrent xdist workers never see half a file
    except OSError:
        pass
    return json.loads(text), digest


def _escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _unescape_pointer(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer_get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in pointer.split("/")[1:]:
        node = node[int(token)] if isinstance(node, list) else node[_unescape_pointer(token)]
    return node


# Object-shape classification used to decide where strictness is safe.
_NONOBJECT, _NEUTRAL, _UNDECLARED, _CLOSED, _OPEN = range(5)
_SHAPE_KEYWORDS = frozenset(
    ("type", "properties", "$ref", "allOf", "oneOf", "anyOf", "const", "enum", "items")
)
_OPEN_KEYWORDS = ("additionalProperties", "patternProperties", "unevaluatedProperties")


class _Prepared:
    """The document plus what strict checking needs to know about it.

    Strictness is implemented as "JSON Schema ``unevaluatedProperties: false``
    at the right places": an object's keys must be declared by the schema at
    that position, counting everything reachable through ``$ref``, ``allOf``
    and the matching ``oneOf``/``anyOf`` branch.  The marker is never put on
    ``allOf`` members (a part of a composition must not reject its siblings'
    keys) nor where the specification deliberately allows any object (free-form
    maps, ``additionalProperties``, ``{type: object}`` with no properties).
    """

    def __init__(self, doc: dict[str, Any], supplements: Sequence[Supplement]) -> None:
        self.doc = doc
        for supplement in supplements:
            target = _pointer_get(doc, supplement.pointer)
            target.setdefault("properties", {}).update(copy.deepcopy(supplement.properties))
            if supplement.not_required and "required" in target:
                target["required"] = [
                    name for name in target["required"] if name not in supplement.not_required
                ]
        self._shape_memo: dict[str, int] = {}
        self._shape_by_id: dict[int, int] = {}
        self._marked = 0
        for path_item in doc.get("paths", {}).values():
            for method, op in path_item.items():
                if method in _METHODS and isinstance(op, dict):
                    self._mark_operation(op)
        for section in ("requestBodies", "responses"):
            for entry in doc.get("components", {}).get(section, {}).values():
                self._mark_media(entry)
        for schema in doc.get("components", {}).get("schemas", {}).values():
            # A named schema itself is reached only through $ref; the reference
            # site carries the marker.  Its inner positions are sites, though.
            self._mark_children(schema)

    def shape(self, schema: Any) -> int:
        """Memoised :meth:`_shape` for schemas met while validating."""
        key = id(schema)
        cached = self._shape_by_id.get(key)
        if cached is None:
            cached = self._shape_by_id[key] = self._shape(schema)
        return cached

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are supported, got {ref!r}")
        return _pointer_get(self.doc, ref[1:])

    # -- marking

    def _mark_operation(self, op: dict[str, Any]) -> None:
        body = op.get("requestBody")
        if isinstance(body, dict) and "$ref" not in body:
            self._mark_media(body)
        for response in op.get("responses", {}).values():
            if isinstance(response, dict) and "$ref" not in response:
                self._mark_media(response)

    def _mark_media(self, entry: dict[str, Any]) -> None:
        for media in (entry.get("content") or {}).values():
            if isinstance(media, dict) and isinstance(media.get("schema"), dict):
                self._mark_site(media["schema"])

    def _mark_site(self, schema: Any, overlaid: Sequence[Any] = ()) -> None:
        """Mark one schema position, then the positions inside it.

        ``overlaid`` holds what sibling ``allOf`` members say about the same
        position.  The specification refines inherited shapes that way, e.g.
        ``SearchResult.hits`` is ``allOf: [HitsMetadata, {properties: {hits:
        {items: {properties: {_source}}}}}]``: the inner ``items`` declares only
        ``_source`` because ``Hit`` (in the sibling) declares the rest.  Such a
        position must not be closed on its own.
        """
        if not isinstance(schema, dict):
            return
        if not overlaid and self._shape(schema) == _CLOSED:
            schema[_STRICT_KEYWORD] = True
            self._marked += 1
        self._mark_children(schema, overlaid)

    def _mark_children(self, schema: Any, overlaid: Sequence[Any] = ()) -> None:
        if not isinstance(schema, dict):
            return
        for name, sub in (schema.get("properties") or {}).items():
            self._mark_site(sub, self._step(overlaid, "properties", name))
        for keyword in ("items", "additionalProperties", "unevaluatedProperties"):
            if isinstance(schema.get(keyword), dict):
                self._mark_site(schema[keyword], self._step(overlaid, keyword))
        for sub in schema.get("prefixItems") or ():
            self._mark_site(sub, [*overlaid, *self._step(overlaid, "items")])
        # Members of compositions are not sites themselves (the enclosing site
        # judges the keys), but their own properties are.  Each allOf member is
        # overlaid by the other members.
        members = list(schema.get("allOf") or ())
        for index, sub in enumerate(members):
            self._mark_children(sub, [*overlaid, *members[:index], *members[index + 1 :]])
        for keyword in ("oneOf", "anyOf"):
            for sub in schema.get(keyword) or ():
                self._mark_children(sub, overlaid)

    def _flatten(self, schemas: Sequence[Any]) -> list[dict[str, Any]]:
        """The schemas with every $ref followed and every composition opened."""
        result: list[dict[str, Any]] = []
        pending = list(schemas)
        seen: set[int] = set()
        while pending:
            node = pending.pop()
            if not isinstance(node, dict) or id(node) in seen:
                continue
            seen.add(id(node))
            result.append(node)
            if isinstance(node.get("$ref"), str):
                pending.append(self.resolve(node["$ref"]))
            for keyword in ("allOf", "oneOf", "anyOf"):
                pending.extend(node.get(keyword) or ())
        return result

    def _step(self, schemas: Sequence[Any], keyword: str, name: str | None = None) -> list[Any]:
        """What ``schemas`` say at ``properties/<name>``, ``items`` or ``additionalProperties``."""
        found: list[Any] = []
        for node in self._flatten(schemas):
            child = (node.get("properties") or {}).get(name) if name else node.get(keyword)
            if isinstance(child, dict):
                found.append(child)
        return found

    # -- shape analysis

    def _shape(self, schema: Any, stack: tuple[str, ...] = ()) -> int:
        """Classify what a schema says about the keys of an object instance."""
        if schema is True:
            return _OPEN
        if schema is False:
            return _NONOBJECT
        if not isinstance(schema, dict):
            return _NONOBJECT
        for keyword in _OPEN_KEYWORDS:
            if keyword in schema and schema[keyword] is not False:
                return _OPEN
        declared_type = schema.get("type")
        if declared_type is not None:
            types = [declared_type] if isinstance(declared_type, str) else declared_type
            if "object" not in types:
                return _NONOBJECT
        if not _SHAPE_KEYWORDS.intersection(schema):
            # {} or annotations only: any value.  Constraint-only schemas
            # ({required: [...]}) only narrow their siblings.
            return _UNDECLARED if not schema.get("required") else _NEUTRAL
        state = _CLOSED if schema.get("properties") else _UNDECLARED
        conjuncts: list[int] = []
        if "$ref" in schema:
            conjuncts.append(self._ref_shape(schema["$ref"], stack))
        conjuncts.extend(self._shape(part, stack) for part in schema.get("allOf") or ())
        for part in conjuncts:
            if part == _OPEN:
                return _OPEN
            if part == _NONOBJECT:
                return _NONOBJECT
            if part == _CLOSED:
                state = _CLOSED
        alternatives = [
            self._shape(alt, stack)
            for keyword in ("oneOf", "anyOf")
            for alt in schema.get(keyword) or ()
        ]
        if alternatives:
            if any(alt in (_OPEN, _UNDECLARED) for alt in alternatives):
                return _OPEN
            if _CLOSED in alternatives:
                state = _CLOSED
            elif all(alt == _NONOBJECT for alt in alternatives) and state != _CLOSED:
                return _NONOBJECT
        if (
            state == _UNDECLARED
            and declared_type is None
            and ("const" in schema or "enum" in schema)
        ):
            return _NONOBJECT
        return state

    def _ref_shape(self, ref: str, stack: tuple[str, ...]) -> int:
        if ref in self._shape_memo:
            return self._shape_memo[ref]
        if ref in stack:
            return _CLOSED  # recursion through composition: judged by the outer frames
        result = self._shape(self.resolve(ref), (*stack, ref))
        self._shape_memo[ref] = result
        return result


# --------------------------------------------------------------------------- paths


@dataclass(frozen=True)
class _Template:
    template: str
    segments: tuple[str | None, ...]  # None marks a {param} segment
    names: tuple[str | None, ...]
    rank: tuple[int, ...]  # lexicographically smaller = more specific

    @classmethod
    def parse(cls, template: str) -> _Template:
        parts = _split_path(template)
        segments = tuple(None if re.fullmatch(r"\{[^}]+\}", p) else p for p in parts)
        names = tuple(p[1:-1] if s is None else None for p, s in zip(parts, segments, strict=True))
        rank = tuple(0 if s is not None else 1 for s in segments)
        return cls(template, segments, names, rank)

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for segment, name, part in zip(self.segments, self.names, parts, strict=True):
            if segment is None:
                if not part:
                    return None
                params[name or ""] = part
            elif segment != part:
                return None
        return params


def _split_path(path: str) -> list[str]:
    stripped = path.strip("/")
    return stripped.split("/") if stripped else []


def _split_url(url_or_path: str) -> tuple[str, dict[str, str]]:
    """Return the path and the query string's parameters of a URL or a bare path."""
    parts = urlsplit(url_or_path)
    path = parts.path or "/"
    return path, dict(parse_qsl(parts.query, keep_blank_values=True))


# --------------------------------------------------------------------------- values


_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def _wire_string(value: Any) -> str | None:
    """What a Python value becomes in a query string (None: not representable)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list | tuple):
        items = [_wire_string(v) for v in value]
        return None if any(i is None for i in items) else ",".join(items)  # type: ignore[arg-type]
    return None


def _scalar(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if _INT_RE.fullmatch(text):
        return int(text)
    if _FLOAT_RE.fullmatch(text):
        return float(text)
    return text


def _string_candidates(text: str) -> Iterator[Any]:
    """Typed readings of a query/path string, the way OpenSearch parses parameters.

    Why: the specification types parameters (boolean, integer, enum, list),
    but on the wire everything is text: ``?deploy=true``, ``?size=10``,
    ``?expand_wildcards=open,hidden``, and a bare ``?refresh`` means true.
    """
    yield text
    if text == "":
        yield True
    typed = _scalar(text)
    if typed is not text:
        yield typed
    items = text.split(",")
    yield items
    yield [_scalar(i) for i in items]


def _json_path(error: ValidationError) -> str:
    return error.json_path


def _to_json(value: Any) -> Any:
    """Normalise a body to what would go over the wire (and prove it can)."""
    return json.loads(json.dumps(value, allow_nan=False))


# --------------------------------------------------------------------------- the spec


class OpenSearchSpec:
    """The OpenSearch REST API specification, ready to check requests and responses."""

    _instances: ClassVar[dict[tuple[str, bool, bool, bool], OpenSearchSpec]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        document: dict[str, Any],
        *,
        source: str = "<document>",
        digest: str = "",
        supplements: Sequence[Supplement] = SUPPLEMENTS,
        strict_requests: bool = True,
        strict_responses: bool = False,
        load_seconds: float = 0.0,
    ) -> None:
        """Prefer :meth:`load`, which caches; this is for tests that need a custom document.

        ``document`` is changed in place: supplements are merged into it and
        the positions checked strictly get an ``x-closed`` marker.
        """
        started = time.perf_counter()
        self._prepared = _Prepared(document, supplements)
        self.document = document
        self.source = source
        self.digest = digest
        self.supplements = tuple(supplements)
        self.strict_requests = strict_requests
        self.strict_responses = strict_responses
        self.validated_operations: Counter[str] = Counter()
        """How often each operation group was checked.  Process-wide (the loaded
        instance is shared), so a test that asserts coverage compares counts
        before and after."""
        # Templates indexed by (segment count, first segment or None for a
        # parameter): a lookup scans a handful of templates, not all 526.
        self._templates: dict[tuple[int, str | None], list[_Template]] = {}
        for template in document.get("paths", {}):
            parsed = _Template.parse(template)
            first = parsed.segments[0] if parsed.segments else None
            self._templates.setdefault((len(parsed.segments), first), []).append(parsed)
        self._registry: Registry[Any] = Registry().with_resource(
            _SPEC_URI, DRAFT202012.create_resource(document)
        )
        self._strict_cls = self._validator_class(strict=True)
        self._lax_cls = self._validator_class(strict=False)
        self._validators: dict[tuple[str, bool], Draft202012Validator] = {}
        self._param_validators: dict[int, Draft202012Validator] = {}
        self._parameter_tables: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._resolved_refs: dict[str, Any] = {}
        self._discriminators: dict[int, dict[Any, Any] | None] = {}
        self._lock = threading.Lock()
        self.load_seconds = load_seconds + (time.perf_counter() - started)
        """Wall time of parsing (or reading the cache) plus preparing: for reports."""

    # -- construction

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        supplements: bool = True,
        strict_requests: bool = True,
        strict_responses: bool = False,
    ) -> OpenSearchSpec:
        """Load the specification once per process and options.

        ``path`` defaults to ``$OPENSEARCH_API_SPEC`` or the vendored copy
        (``tests/support/opensearch-api-spec/opensearch-openapi.yaml``); a
        ``.yaml.gz`` file works too.
        """
        resolved = Path(path).expanduser().resolve() if path else _default_spec_path().resolve()
        key = (str(resolved), supplements, strict_requests, strict_responses)
        with cls._instances_lock:
            instance = cls._instances.get(key)
            if instance is None:
                started = time.perf_counter()
                document, digest = _read_document(resolved)
                instance = cls(
                    document,
                    source=str(resolved),
                    digest=digest,
                    supplements=SUPPLEMENTS if supplements else (),
                    strict_requests=strict_requests,
                    strict_responses=strict_responses,
                    load_seconds=time.perf_counter() - started,
                )
                cls._instances[key] = instance
            return instance

    # -- operations

    def find_operation(self, method: str, path: str) -> Operation:
        """Match a concrete path (no query string) and method to an operation.

        Raises :class:`SpecViolation` when no template matches or the most
        specific matching template does not define the method.
        """
        method_upper = method.upper()
        parts = [unquote(p) for p in _split_path(path)]
        candidates = [*self._templates.get((len(parts), None), ())]
        if parts:
            candidates += self._templates.get((len(parts), parts[0]), ())
        matches = sorted(
            (
                (template, params)
                for template in candidates
                if (params := template.match(parts)) is not None
            ),
            key=lambda match: (match[0].rank, match[0].template),
        )
        if not matches:
            raise SpecViolation(
                f"{method_upper} {path}: the specification defines no path like this",
                method=method_upper,
                path=path,
                location="path",
            )
        best, params = matches[0]
        path_item = self.document["paths"][best.template]
        op = path_item.get(method.lower())
        if not isinstance(op, dict):
            defined = sorted(m.upper() for m in path_item if m in _METHODS)
            others = [
                t.template
                for t, _ in matches[1:]
                if method.lower() in self.document["paths"][t.template]
            ]
            hint = (
                f"; the less specific {others[0]} defines {method_upper}, but a literal "
                f"segment is taken as a parameter there, which is almost certainly a mistake"
                if others
                else ""
            )
            raise SpecViolation(
                f"{method_upper} {path}: the specification defines {best.template} only for "
                f"{', '.join(defined)}{hint}",
                method=method_upper,
                path=path,
                location="method",
            )
        return Operation(
            method=method_upper,
            template=best.template,
            operation_id=op.get("operationId", ""),
            group=op.get("x-operation-group", op.get("operationId", "")),
            path_params=params,
            version_added=op.get("x-version-added"),
            distributions_excluded=tuple(op.get("x-distributions-excluded") or ()),
        )

    def _op(self, operation: Operation) -> dict[str, Any]:
        return self.document["paths"][operation.template][operation.method.lower()]

    def _deref(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node and len(node) == 1:
            node = self._prepared.resolve(node["$ref"])
        return node

    def _parameters(self, operation: Operation) -> dict[tuple[str, str], dict[str, Any]]:
        key = (operation.template, operation.method)
        cached = self._parameter_tables.get(key)
        if cached is not None:
            return cached
        op = self._op(operation)
        path_item = self.document["paths"][operation.template]
        result: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*path_item.get("parameters", ()), *op.get("parameters", ())]:
            param = self._deref(raw)
            result[(param["in"], param["name"])] = param
        with self._lock:
            self._parameter_tables.setdefault(key, result)
        return result

    # -- validation entry points

    def validate_request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        *,
        strict: bool | None = None,
    ) -> Operation:
        """Check a request: path and method, path parameters, query parameters, body.

        ``path`` may be a full URL or carry a query string; its parameters are
        merged with ``query``.  Query values may be Python values (``True``,
        ``10``, ``["a", "b"]``: sent as ``true``, ``10``, ``a,b``) or strings; a
        value of ``None`` means "not sent".  ``body`` is the parsed JSON (``None``
        for no body), or ``str``/``bytes`` holding JSON (NDJSON for ``_bulk``,
        where a list of action and source objects works too).

        Returns the matched :class:`Operation`; raises :class:`SpecViolation`.
        """
        concrete, url_query = _split_url(path)
        merged: dict[str, Any] = {**url_query, **(query or {})}
        operation = self.find_operation(method, concrete)
        problems: list[str] = []
        params = self._parameters(operation)
        for (location, name), param in params.items():
            if location == "path":
                value = operation.path_params.get(name)
                if value is not None and not self._string_valid(param, value):
                    problems.append(
                        f"path parameter {name}={value!r} does not match its schema "
                        f"{self._describe(param.get('schema'))}"
                    )
        defined_query = {name for (loc, name) in params if loc == "query"}
        for name, value in merged.items():
            if value is None:
                continue
            if name not in defined_query:
                problems.append(
                    f"query parameter {name!r} is not defined for this operation "
                    f"(defined: {', '.join(sorted(defined_query)) or 'none'})"
                )
                continue
            text = _wire_string(value)
            if text is None:
                problems.append(
                    f"query parameter {name}={value!r}: a {type(value).__name__} cannot be "
                    f"sent in a query string"
                )
            elif not self._string_valid(params[("query", name)], text):
                schema = params[("query", name)].get("schema")
                problems.append(
                    f"query parameter {name}={text!r} does not match its schema "
                    f"{self._describe(schema)}"
                )
        for (location, name), param in params.items():
            if location == "query" and param.get("required") and merged.get(name) is None:
                problems.append(f"required query parameter {name!r} is missing")
        if problems:
            self._raise(operation, concrete, "query", problems)
        self._validate_request_body(operation, concrete, body, strict)
        self.validated_operations[operation.group] += 1
        return operation

    def validate_response(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        *,
        strict: bool | None = None,
    ) -> Operation:
        """Check a response body against the schema documented for its status.

        * Documented status: its schema.  No schema documented: any body.  No
          content documented: no body.  A documented body that is missing is
          a violation (an emulator that forgets a body is wrong).
        * Undocumented 4xx/5xx: OpenSearch's common error schema
          (``_common___ErrorResponseBase``; ``security._common___Error`` for
          the security plugin), and an integer ``status`` field must equal the
          HTTP status.  Also accepted, because the Amazon OpenSearch Service
          front end (not OpenSearch) produces them and no OpenSearch
          specification can describe them: ``{"Message": "..."}`` for 403
          (IAM access policy), 429 and 5xx, and an empty body for 5xx.
        * Undocumented 1xx/2xx/3xx: a violation.
        * ``HEAD``: only the status matters (HTTP discards a HEAD body), so any
          body an emulator computes is ignored.
        """
        concrete, _ = _split_url(path)
        operation = self.find_operation(method, concrete)
        parsed = self._parse_body(operation, concrete, body, "application/json", "response")
        pointer = self._response_pointer(operation, concrete, status, parsed)
        if pointer is not None:
            use_strict = self.strict_responses if strict is None else strict
            self._check(operation, concrete, "response", pointer, parsed, use_strict)
        self.validated_operations[operation.group] += 1
        return operation

    def _response_pointer(
        self, operation: Operation, path: str, status: int, parsed: Any
    ) -> str | None:
        """The schema a response must match, or None when nothing more is to be checked."""

        def fail(problem: str) -> None:
            self._raise(operation, path, "response", [problem])

        if operation.method == "HEAD":
            return None  # HTTP discards a HEAD response's body: nothing reaches the client
        responses = self._op(operation).get("responses") or {}
        key = next(
            (k for k in (str(status), f"{status // 100}XX", "default") if k in responses),
            None,
        )
        if key is not None:
            pointer = self._media_schema_pointer(
                f"/paths/{_escape_pointer(operation.template)}/{operation.method.lower()}"
                f"/responses/{_escape_pointer(key)}"
            )
            if pointer == "":
                if parsed is not None:
                    fail(f"status {status} is documented without a body, but one was given")
                return None
            if parsed is None:
                fail(f"status {status} is documented with a JSON body, but none was given")
            return pointer
        if status < 400:
            fail(
                f"status {status} is not documented for this operation "
                f"(documented: {', '.join(responses) or 'none'})"
            )
        front_end = status in (403, 429) or status >= 500
        if parsed is None:
            if status >= 500:
                return None
            fail(f"an error response ({status}) without a body")
        if front_end and _is_front_end_error(parsed):
            return None
        recorded = parsed.get("status") if isinstance(parsed, dict) else None
        if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded != status:
            fail(f"error body says status {recorded}, the HTTP status is {status}")
        if operation.group.startswith("security."):
            return "/components/schemas/security._common___Error"
        return "/components/schemas/_common___ErrorResponseBase"

    def validate_exchange(
        self,
        method: str,
        url_or_path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        status: int,
        response_body: Any,
        *,
        strict_request: bool | None = None,
        strict_response: bool | None = None,
    ) -> Operation:
        """Check one request and the response it got: what an emulator calls per call."""
        operation = self.validate_request(method, url_or_path, query, body, strict=strict_request)
        self.validate_response(method, url_or_path, status, response_body, strict=strict_response)
        return operation

    # -- body handling

    def _media_schema_pointer(self, pointer: str) -> str | None:
        """Pointer to the schema of a request body/response object.

        Returns ``""`` when the object documents no content at all and
        ``None`` when it documents content without a schema (anything goes).
        """
        node = _pointer_get(self.document, pointer)
        while "$ref" in node:
            pointer = node["$ref"][1:]
            node = _pointer_get(self.document, pointer)
        content = node.get("content") or {}
        if not content:
            return ""
        media_type = "application/json" if "application/json" in content else next(iter(content))
        if "schema" not in content[media_type]:
            return None
        return f"{pointer}/content/{_escape_pointer(media_type)}/schema"

    def _request_media_type(self, operation: Operation) -> str:
        body = self._deref(self._op(operation).get("requestBody"))
        content = (body or {}).get("content") or {}
        return (
            "application/json"
            if "application/json" in content or not content
            else next(iter(content))
        )

    def _parse_body(
        self, operation: Operation, path: str, body: Any, media_type: str, where: str
    ) -> Any:
        if body is None or body in (b"", ""):
            return None
        if isinstance(body, bytes | bytearray):
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError:
                self._raise(operation, path, where, ["the body is not UTF-8 text"])
        try:
            if isinstance(body, str):
                if media_type == "application/x-ndjson":
                    return [json.loads(line) for line in body.splitlines() if line.strip()]
                return json.loads(body)
            return _to_json(body)
        except (TypeError, ValueError) as exc:
            self._raise(operation, path, where, [f"the body is not valid JSON: {exc}"])
        raise AssertionError("unreachable")  # pragma: no cover

    def _validate_request_body(
        self, operation: Operation, path: str, body: Any, strict: bool | None
    ) -> None:
        op = self._op(operation)
        request_body = op.get("requestBody")
        media_type = self._request_media_type(operation)
        parsed = self._parse_body(operation, path, body, media_type, "body")
        if request_body is None:
            if parsed is not None:
                self._raise(operation, path, "body", ["this operation takes no request body"])
            return
        if parsed is None:
            if self._deref(request_body).get("required"):
                self._raise(operation, path, "body", ["a request body is required"])
            return
        pointer = self._media_schema_pointer(
            f"/paths/{_escape_pointer(operation.template)}/{operation.method.lower()}/requestBody"
        )
        if pointer:
            use_strict = self.strict_requests if strict is None else strict
            self._check(operation, path, "body", pointer, parsed, use_strict)

    def _check(
        self,
        operation: Operation,
        path: str,
        where: str,
        pointer: str,
        instance: Any,
        strict: bool,
    ) -> None:
        validator = self._validator(pointer, strict)
        errors = list(validator.iter_errors(instance))
        if not errors:
            return
        primary = best_match(errors)
        others = sorted((e for e in errors if e is not primary), key=relevance, reverse=True)
        ordered = [primary, *others]
        problems = [f"{_json_path(self._leaf(e))}: {self._leaf(e).message}" for e in ordered]
        label = "request body" if where == "body" else "response body"
        self._raise(
            operation,
            path,
            where,
            problems,
            label=label,
            field_path=_json_path(self._leaf(primary)),
        )

    @staticmethod
    def _leaf(error: ValidationError) -> ValidationError:
        """The most specific reason inside a oneOf/anyOf failure, for readable messages."""
        while error.context:
            error = best_match(error.context) or error
            if not error.context:
                break
        return error

    def _raise(
        self,
        operation: Operation,
        path: str,
        where: str,
        problems: Sequence[str],
        *,
        label: str | None = None,
        field_path: str = "",
    ) -> None:
        shown = list(problems[:_MAX_LISTED_PROBLEMS])
        more = len(problems) - len(shown)
        detail = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        message = (
            f"{operation.method} {path} [{operation.group}, {operation.template}]: "
            f"{label or where}: {detail}"
        )
        raise SpecViolation(
            message,
            method=operation.method,
            path=path,
            operation=operation,
            location=where,
            field_path=field_path,
            problems=problems,
        )

    # -- schema machinery

    def _string_valid(self, param: Mapping[str, Any], text: str) -> bool:
        schema = param.get("schema")
        if schema is None:
            return True
        compiled = self._param_validators.get(id(param))
        if compiled is None:
            # Parameter schemas hold "#/..." references relative to the whole
            # document; rebased, they resolve through the registry.
            compiled = self._lax_cls(_rebase(schema), registry=self._registry)
            with self._lock:
                self._param_validators.setdefault(id(param), compiled)
        return any(compiled.is_valid(candidate) for candidate in _string_candidates(text))

    def _validator(self, pointer: str, strict: bool) -> Draft202012Validator:
        key = (pointer, strict)
        validator = self._validators.get(key)
        if validator is None:
            cls = self._strict_cls if strict else self._lax_cls
            validator = cls({"$ref": f"{_SPEC_URI}#{pointer}"}, registry=self._registry)
            with self._lock:
                self._validators.setdefault(key, validator)
        return validator

    def _describe(self, schema: Any) -> str:
        text = json.dumps(self._deref(schema), sort_keys=True)
        return text if len(text) <= 160 else text[:157] + "..."

    def _validator_class(self, *, strict: bool) -> type[Draft202012Validator]:
        base_any_of: Callable[..., Iterator[ValidationError]] = Draft202012Validator.VALIDATORS[
            "anyOf"
        ]
        spec = self

        def one_of(
            validator: Draft202012Validator, alternatives: Any, instance: Any, schema: Any
        ) -> Iterator[ValidationError]:
            """``oneOf`` read as the specification means it.

            With an OpenAPI ``discriminator``, the branch is chosen by it.  Why:
            the mapping ``Property`` is a oneOf of 47 field types; plain oneOf
            tries them all and says only "not valid under any of the given
            schemas", while the chosen branch says "'model_id' is a required
            property" for a broken semantic field.

            Without one, it is checked as ``anyOf``.  Why: the specification
            writes unions as oneOf although their open object members overlap;
            ``"sort": [{"created_time": {"order": "desc"}}]`` is valid under two
            members of ``SortCombinations`` and would fail a literal oneOf, a
            false alarm on a request every OpenSearch accepts.
            """
            branch = spec._discriminated_branch(validator, schema, instance)
            if branch is None:
                yield from base_any_of(validator, alternatives, instance, schema)
                return
            index, chosen = branch
            if chosen is None:
                discriminator = schema["discriminator"]["propertyName"]
                table = spec._discriminator_table(schema) or {}
                yield ValidationError(
                    f"{discriminator} {instance.get(discriminator)!r} is not one of the "
                    f"{len(table)} kinds the specification defines "
                    f"({', '.join(sorted(map(str, table)))})",
                    path=(discriminator,) if discriminator in instance else (),
                )
                return
            yield from validator.descend(instance, chosen, schema_path=index)

        def closed(
            validator: Draft202012Validator, enabled: Any, instance: Any, schema: Any
        ) -> Iterator[ValidationError]:
            """Undeclared object keys are errors (``unevaluatedProperties: false``)."""
            if not enabled or not validator.is_type(instance, "object"):
                return
            known = spec._evaluated_keys(validator, instance, schema, 0)
            if known is None:
                return
            for key in instance:
                if key not in known:
                    declared = ", ".join(sorted(known | spec._declared(schema))) or "none"
                    yield ValidationError(
                        f"{key!r} is not a property the specification declares here "
                        f"(declared: {declared})",
                        path=(key,),
                    )

        def ref(
            validator: Draft202012Validator, reference: str, instance: Any, schema: Any
        ) -> Iterator[ValidationError]:
            """``$ref`` with the resolution memoised.

            Why: jsonschema resolves a reference on every use, about 75 us for
            a pointer into this 2.8 MB document, and one search body crosses
            dozens of references.  Every reference here points into the one
            registered document, so a reference string always resolves to the
            same place.  (Uses jsonschema's ``_resolver``; jsonschema is pinned.)
            """
            resolved = spec._resolved_refs.get(reference)
            if resolved is None:
                resolved = validator._resolver.lookup(reference)
                spec._resolved_refs[reference] = resolved
            yield from validator.descend(instance, resolved.contents, resolver=resolved.resolver)

        keywords: dict[str, Callable[..., Iterator[ValidationError]]] = {
            "oneOf": one_of,
            "$ref": ref,
        }
        if strict:
            keywords[_STRICT_KEYWORD] = closed
        return extend(Draft202012Validator, keywords)

    def _discriminator_table(self, schema: Mapping[str, Any]) -> dict[Any, Any] | None:
        """Map discriminator values to ``(index, branch)``; None if not expressible."""
        key = id(schema)
        if key in self._discriminators:
            return self._discriminators[key]
        discriminator = schema.get("discriminator") or {}
        name = discriminator.get("propertyName")
        table: dict[Any, Any] | None = {} if name else None
        for index, branch in enumerate(schema.get("oneOf") or ()):
            if table is None:
                break
            values = self._discriminator_values(branch, name, ())
            if not values:
                table = None
                break
            for value in values:
                table[value] = (index, branch)
        with self._lock:
            self._discriminators[key] = table
        return table

    def _discriminator_values(self, schema: Any, name: str, stack: tuple[str, ...]) -> list[Any]:
        if not isinstance(schema, dict):
            return []
        values: list[Any] = []
        prop = (schema.get("properties") or {}).get(name)
        if isinstance(prop, dict):
            prop = self._deref(prop)
            if "const" in prop:
                values.append(prop["const"])
            values.extend(prop.get("enum") or ())
        ref = schema.get("$ref")
        if ref and ref not in stack:
            values.extend(
                self._discriminator_values(self._prepared.resolve(ref), name, (*stack, ref))
            )
        for part in schema.get("allOf") or ():
            values.extend(self._discriminator_values(part, name, stack))
        return values

    def _discriminated_branch(
        self, validator: Draft202012Validator, schema: Mapping[str, Any], instance: Any
    ) -> tuple[int, Any] | None:
        """``(index, branch)`` chosen by the discriminator, ``(-1, None)`` for an
        unknown value, or ``None`` when plain oneOf semantics apply."""
        if "discriminator" not in schema or not validator.is_type(instance, "object"):
            return None
        table = self._discriminator_table(schema)
        if table is None:
            return None
        discriminator = schema["discriminator"]
        name = discriminator["propertyName"]
        value = instance.get(name, discriminator.get("x-default"))
        if value not in table:
            if name not in instance:
                return None
            return (-1, None)
        return table[value]

    def _declared(self, schema: Any, depth: int = 0) -> set[str]:
        """Property names a schema declares (for error messages)."""
        if not isinstance(schema, dict) or depth > 8:
            return set()
        names = set(schema.get("properties") or ())
        if "$ref" in schema:
            names |= self._declared(self._prepared.resolve(schema["$ref"]), depth + 1)
        for part in schema.get("allOf") or ():
            names |= self._declared(part, depth + 1)
        return names

    def _evaluated_keys(
        self, validator: Draft202012Validator, instance: dict[str, Any], schema: Any, depth: int
    ) -> set[str] | None:
        """Keys of ``instance`` that ``schema`` declares; None means "all of them".

        Follows ``$ref``, ``allOf`` and the matching ``oneOf``/``anyOf``
        branches, like JSON Schema's ``unevaluatedProperties``.  When no branch
        matches, the oneOf error already explains the problem, so no key is
        reported as unknown on top of it.
        """
        if schema is True or depth > 32:
            return None
        if not isinstance(schema, dict):
            return set()
        for keyword in _OPEN_KEYWORDS:
            if keyword in schema and schema[keyword] is not False:
                return None
        keys = set(schema.get("properties") or ()) & instance.keys()
        parts: list[Any] = list(schema.get("allOf") or ())
        if "$ref" in schema:
            parts.append(self._prepared.resolve(schema["$ref"]))
        branch = self._discriminated_branch(validator, schema, instance)
        if branch is not None:
            if branch[1] is None:
                return None
            parts.append(branch[1])
        else:
            alternatives = [*(schema.get("oneOf") or ()), *(schema.get("anyOf") or ())]
            if alternatives:
                valid = [
                    alt
                    for alt in alternatives
                    # Non-object branches (e.g. the boolean of _source) cannot match.
                    if self._prepared.shape(alt) != _NONOBJECT
                    and validator.evolve(schema=alt).is_valid(instance)
                ]
                if not valid:
                    return None
                parts.extend(valid)
        for part in parts:
            sub = self._evaluated_keys(validator, instance, part, depth + 1)
            if sub is None:
                return None
            keys |= sub
        return keys


def _is_front_end_error(body: Any) -> bool:
    """``{"Message": "..."}``: how the AWS front end of the service words a refusal."""
    return isinstance(body, dict) and isinstance(body.get("Message"), str) and len(body) == 1


def _rebase(schema: Any) -> Any:
    """Rewrite local ``#/...`` references to point into the registered document."""
    if isinstance(schema, dict):
        return {
            k: (
                f"{_SPEC_URI}{v}"
                if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _rebase(v)
            )
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


def validate_exchange(
    method: str,
    url_or_path: str,
    query: Mapping[str, Any] | None,
    body: Any,
    status: int,
    response_body: Any,
) -> Operation:
    """Module-level shortcut: check a request and its response with the default spec."""
    return OpenSearchSpec.load().validate_exchange(
        method, url_or_path, query, body, status, response_body
    )

"""The OpenSearch client of the custom-resource Lambda: opensearch-py, with our retry rules.

Requests go through opensearch-py (``OpenSearch`` with ``Urllib3HttpConnection``
and ``Urllib3AWSV4SignerAuth``: the ecosystem's SigV4 signer, connection
pooling, error mapping and typed APIs). What opensearch-py does not give, and
this module adds, is the retry policy of a custom resource: its own retries are
switched off (``max_retries=0``, ``retry_on_timeout=False``, no
``retry_on_status``) because they retry a fixed number of times with no
deadline, retry any request after a connection error (a POST that created an
object may be sent twice), and do not know the one fault that dominates a
fresh deployment: IAM access policies and security-plugin role mappings take
seconds to propagate, so the first calls of a new identity get 401/403. Ours
retry what is worth retrying until a deadline derived from the Lambda's
remaining time, never forever, and are the only ones.

Retry rules:
* 429 (throttling) and 408 are retried for every request until the deadline:
  OpenSearch and the service front end reject these before the request does
  anything.
* Denials are told apart, because only some of them are propagation delays:
  401, and the service front end's IAM denial (a ``{"Message": "User: ... is
  not authorized to perform: es:ESHttp..."}`` body, what a role or policy
  created seconds ago gets) are retried until the deadline. Any other 403 (the
  security plugin's ``security_exception`` "no permissions for [...]", an ML
  Commons 403 such as model access control) is retried only for
  ``PERMANENT_DENIAL_SECONDS`` (a fresh role mapping reaches every node well
  within that), then fails with :class:`PermissionDenied`, which names the
  permission, instead of burning the Lambda's remaining minutes.
* 5xx and connection errors are retried only for requests marked idempotent.
  A POST that creates an object may have succeeded before the 5xx; resource
  code retries those at a higher level (find by name, then create).
Backoff is exponential with full jitter, capped, and never sleeps past the
deadline. Each attempt's timeout is cut to the time left before the deadline.

The bundle: opensearch-py is installed with ``--no-deps`` plus exactly what it
imports at run time (lambdas/requirements.txt); botocore (which the signer
uses) comes with the Lambda runtime.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from botocore.credentials import ReadOnlyCredentials

# opensearch-py's signer module imports requests (for its requests-based signer,
# which we do not use), and requests warns on import when no character-detection
# library is installed. None is bundled: nothing here decodes a requests response.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Unable to find acceptable character detection")
    from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth, Urllib3HttpConnection
    from opensearchpy.exceptions import ConnectionError as ClientConnectionError
    from opensearchpy.exceptions import TransportError

LOG = logging.getLogger(__name__)

# Rejected before the request has any effect: safe to retry even for a POST.
PRE_EXECUTION_RETRY = frozenset({401, 403, 408, 429})
# How long a 403 that is not the front end's IAM denial may persist before it is
# taken as a missing permission rather than a mapping still propagating.
PERMANENT_DENIAL_SECONDS = 60.0
_FRONT_END_DENIAL = re.compile(r"is not authorized to perform: es:ESHttp\w+")
_MISSING_PERMISSION = re.compile(r"no permissions for \[([^\]]*)\]")
# Possibly after the request took effect: retried only when idempotent.
SERVER_RETRY = frozenset({500, 502, 503, 504})
MAX_REASON_CHARS = 600
SERVICE = "es"


class Clock(Protocol):
    """Time source; tests pass a fake one so backoff never really sleeps."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time for the Lambda."""

    def now(self) -> float:
        # Wall time, not monotonic: is_complete compares it with a deadline
        # that on_event computed in another Lambda invocation.
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


CredentialSource = Callable[[], ReadOnlyCredentials]


class OpenSearchError(Exception):
    """A request failed; carries OpenSearch's error type and reason for the CloudFormation event."""

    def __init__(self, method: str, path: str, status: int, error_type: str, reason: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.error_type = error_type
        self.reason = reason[:MAX_REASON_CHARS]
        super().__init__(str(self))

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status else "no response"
        return f"{self.method} {self.path}: {status} {self.error_type}: {self.reason}"


class DeadlineExceeded(OpenSearchError):
    """Retries ran out of time; the last failure is kept as the reason."""

    def __init__(self, last: OpenSearchError, waited: float) -> None:
        super().__init__(
            last.method,
            last.path,
            last.status,
            last.error_type,
            f"gave up after {waited:.0f}s of retries; last error: {last.reason}",
        )
        self.last = last


class PermissionDenied(OpenSearchError):
    """A 403 that outlasted the propagation bound: a permission is missing, not late."""

    def __init__(self, last: OpenSearchError, waited: float) -> None:
        found = _MISSING_PERMISSION.search(last.reason)
        missing = f"missing permission [{found.group(1)}]" if found else "permission denied"
        super().__init__(
            last.method,
            last.path,
            last.status,
            last.error_type,
            f"{missing} (still refused after {waited:.0f}s, so not a propagation delay): "
            f"{last.reason}",
        )
        self.last = last


def _parsed(raw: Any) -> tuple[Any, str | None]:
    """(JSON value or None, text or None) of a body given as bytes, text or already parsed."""
    if raw is None or isinstance(raw, (dict, list)):
        return raw, None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    text = str(raw)
    try:
        return (json.loads(text) if text else None), None
    except ValueError:
        return None, text


def is_propagation_denial(status: int, raw: Any) -> bool:
    """True for the denials a just-created identity gets while IAM and mappings propagate.

    401, and the front end's IAM answer: a top-level ``Message`` (capital M, the
    AWS service shape, not OpenSearch's ``error`` object) saying the caller "is
    not authorized to perform: es:ESHttp<Method>". ``raw`` is the body as bytes,
    text or parsed JSON.
    """
    if status == 401:
        return True
    if status != 403:
        return False
    body, _ = _parsed(raw)
    message = body.get("Message") if isinstance(body, dict) else None
    return isinstance(message, str) and _FRONT_END_DENIAL.search(message) is not None


@dataclass(frozen=True)
class Response:
    """A completed HTTP exchange (2xx, or a status the caller chose to accept)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter (spreads retries of parallel resources)."""

    base: float = 1.0
    cap: float = 20.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap, self.base * (2**attempt)))


def parse_error(status: int, raw: Any) -> tuple[str, str]:
    """Extract (type, reason) from the error shapes OpenSearch and AWS return.

    Shapes seen: the standard ``{"error": {"type", "reason"}}``; ML Commons'
    ``{"error": {"type", "reason", "details"}}``; the security plugin's
    ``{"status": "NOT_FOUND", "message": ...}``; the service front end's
    ``{"Message": ...}``; and plain text. ``raw`` is bytes, text or parsed JSON.
    """
    body, text = _parsed(raw)
    if text is not None:
        return "http_error", text.strip() or f"HTTP {status}"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            error_type = str(error.get("type") or "error")
            reason = str(error.get("reason") or "")
            details = error.get("details")
            if details and str(details) not in reason:
                reason = f"{reason}: {details}" if reason else str(details)
            return error_type, reason or json.dumps(error)[:MAX_REASON_CHARS]
        if isinstance(error, str):
            return "error", error
        message = body.get("message") or body.get("Message")
        if message:
            kind = body.get("status") if isinstance(body.get("status"), str) else "error"
            return str(kind), str(message)
    return "http_error", json.dumps(body)[:MAX_REASON_CHARS] if body else f"HTTP {status}"


class _PerRequestCredentials:
    """Hands opensearch-py's signer our credential source.

    The signer calls ``get_frozen_credentials()`` once per request (so a refresh
    never mixes an old key with a new secret); ours returns frozen credentials,
    refreshed by the source (identity.py) before they expire.
    """

    def __init__(self, source: CredentialSource) -> None:
        self._source = source

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        return self._source()


def check_path(path: str) -> str:
    """The path percent-encoded, or ValueError for one that could reach another API.

    A crafted id must never turn into another API's path: ``quote`` keeps
    ``../``, so dot segments are refused before anything is sent.
    """
    if not path.startswith("/") or any(seg in (".", "..") for seg in path.split("/")):
        raise ValueError(f"refusing a request path with dot segments: {path[:200]!r}")
    return quote(path, safe="/_-.~,*")


def connect(
    endpoint: str, region: str, credentials: CredentialSource, *, timeout: float = 30.0
) -> OpenSearch:
    """An opensearch-py client for ``endpoint`` signing with ``credentials``, retrying nothing.

    ``max_retries=0``, ``retry_on_timeout=False`` and an empty ``retry_on_status``:
    the retry rules of :class:`OpenSearchClient` must be the only ones, or a POST
    could be resent after a connection error and every retry would multiply.
    """
    base = endpoint if "://" in endpoint else f"https://{endpoint}"
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"not a domain endpoint: {endpoint!r}")
    https = parts.scheme == "https"
    return OpenSearch(
        hosts=[f"{parts.scheme}://{parts.netloc}"],
        http_auth=Urllib3AWSV4SignerAuth(_PerRequestCredentials(credentials), region, SERVICE),
        connection_class=Urllib3HttpConnection,
        use_ssl=https,
        verify_certs=https,
        timeout=timeout,
        max_retries=0,
        retry_on_timeout=False,
        retry_on_status=(),
    )


class OpenSearchClient:
    """Requests to one domain through opensearch-py, with bounded retries of our own.

    :meth:`request` takes a path (what the resource modules use); :meth:`call`
    runs a typed opensearch-py API (``client.cluster``, ``client.plugins.ml``,
    ...) under the same rules. :attr:`opensearch` is the underlying client.
    """

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: CredentialSource,
        *,
        deadline: float,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        self._os = connect(endpoint, region, credentials, timeout=request_timeout)
        self._clock = clock or SystemClock()
        self._deadline = deadline
        self._backoff = backoff or Backoff()
        self._request_timeout = request_timeout

    @property
    def opensearch(self) -> OpenSearch:
        return self._os

    @property
    def deadline(self) -> float:
        return self._deadline

    def remaining(self) -> float:
        return self._deadline - self._clock.now()

    def pause(self, attempt: int) -> bool:
        """Back off before a resource-level retry; False when the deadline leaves no room."""
        delay = self._backoff.delay(attempt)
        if self._clock.now() + delay >= self._deadline:
            return False
        self._clock.sleep(delay)
        return True

    def wait_until_available(self) -> Response:
        """Block until the domain answers this identity, or the deadline passes.

        Cluster health needs only ``cluster_monitor``, which both the master
        user and ``ml_full_access`` have; 401/403 while permissions propagate
        and 5xx while the domain is still processing are retried.
        """
        return self.call(
            "GET",
            "/_cluster/health",
            lambda client, timeout: client.cluster.health(request_timeout=timeout),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        allow: Iterable[int] = (),
        idempotent: bool | None = None,
    ) -> Response:
        """Send one logical request; statuses in ``allow`` (e.g. 404) return instead of raising.

        It goes to the transport's connection, not ``transport.perform_request``:
        that returns the body only, and callers branch on the status they allowed
        (404 "absent" against 200 "present").
        """
        allowed = frozenset(allow)
        url = check_path(path)
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        params = dict(sorted(query.items())) if query else None

        def send(timeout: float) -> tuple[int, Any]:
            connection = self._os.transport.get_connection()
            status, _headers, raw = connection.perform_request(
                method, url, params, data, timeout=timeout, ignore=tuple(allowed)
            )
            return status, _decode(raw)

        return self._retrying(method, path, send, idempotent)

    def call(
        self,
        method: str,
        path: str,
        api: Callable[[OpenSearch, float], Any],
        *,
        allow: Iterable[int] = (),
        idempotent: bool | None = None,
    ) -> Response:
        """Run ``api(client, timeout)``, a typed opensearch-py call, under the retry rules.

        ``method`` and ``path`` are what ``api`` sends: they name the call in
        errors, decide idempotence as for :meth:`request`, and are checked for
        dot segments (a typed API quotes ``/`` in an id, but not ``..``).
        ``timeout`` is the attempt's share of the deadline; a status in ``allow``
        returns as a :class:`Response` with the error body.
        """
        check_path(path)
        return self._retrying(
            method, path, lambda timeout: (200, api(self._os, timeout)), idempotent, allow
        )

    def _retrying(
        self,
        method: str,
        path: str,
        send: Callable[[float], tuple[int, Any]],
        idempotent: bool | None,
        allow: Iterable[int] = (),
    ) -> Response:
        allowed = frozenset(allow)
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        started = self._clock.now()
        first_denial: float | None = None
        attempt = 0
        while True:
            timeout = max(1.0, min(self._request_timeout, self.remaining()))
            try:
                status, body = send(timeout)
            except ClientConnectionError as exc:  # also ConnectionTimeout and SSLError
                cause = exc.info if isinstance(exc.info, BaseException) else exc
                failure = OpenSearchError(
                    method, path, 0, "connection_error", f"{type(cause).__name__}: {cause}"
                )
                retryable = idempotent
            except TransportError as exc:
                status = exc.status_code if isinstance(exc.status_code, int) else 0
                # info is the parsed JSON body; error is the raw text when it was not JSON.
                raw = exc.info if exc.info is not None else exc.error
                if status in allowed:
                    return Response(status, raw)
                error_type, reason = parse_error(status, raw)
                failure = OpenSearchError(method, path, status, error_type, reason)
                retryable = status in PRE_EXECUTION_RETRY or (idempotent and status in SERVER_RETRY)
                if status == 403 and not is_propagation_denial(status, raw):
                    now = self._clock.now()
                    first_denial = now if first_denial is None else first_denial
                    if now - first_denial >= PERMANENT_DENIAL_SECONDS:
                        raise PermissionDenied(failure, now - started) from None
            else:
                return Response(status, body)
            if not retryable:
                raise failure
            delay = self._backoff.delay(attempt)
            if self._clock.now() + delay >= self._deadline:
                raise DeadlineExceeded(failure, self._clock.now() - started)
            LOG.info("retrying %s %s in %.1fs after %s", method, path, delay, failure)
            self._clock.sleep(delay)
            attempt += 1


def _decode(raw: str | bytes | None) -> Any:
    if not raw:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        return json.loads(raw)
    except ValueError:
        return raw

"""A small SigV4-signing OpenSearch REST client for the custom-resource Lambda.

Why not opensearch-py: its 3.x releases pull grpcio (about 19 MB) that this
code never imports, and its retry logic does not know the one fault that
dominates a fresh deployment: IAM access policies and security-plugin role
mappings take seconds to propagate, so the first calls of a new identity get
401/403. This client is urllib3 (bundled, pinned) plus botocore's SigV4Auth
(in the Lambda runtime), and retries what is worth retrying until a deadline
derived from the Lambda's remaining time, never forever.

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
deadline.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

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


def is_propagation_denial(status: int, raw: bytes) -> bool:
    """True for the denials a just-created identity gets while IAM and mappings propagate.

    401, and the front end's IAM answer: a top-level ``Message`` (capital M, the
    AWS service shape, not OpenSearch's ``error`` object) saying the caller "is
    not authorized to perform: es:ESHttp<Method>".
    """
    if status == 401:
        return True
    if status != 403:
        return False
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        return False
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


def parse_error(status: int, raw: bytes) -> tuple[str, str]:
    """Extract (type, reason) from the error shapes OpenSearch and AWS return.

    Shapes seen: the standard ``{"error": {"type", "reason"}}``; ML Commons'
    ``{"error": {"type", "reason", "details"}}``; the security plugin's
    ``{"status": "NOT_FOUND", "message": ...}``; the service front end's
    ``{"Message": ...}``; and plain text.
    """
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        text = raw.decode("utf-8", "replace").strip()
        return "http_error", text or f"HTTP {status}"
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


class OpenSearchClient:
    """Signed JSON requests to one domain, with bounded retries."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: CredentialSource,
        *,
        deadline: float,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        pool: urllib3.PoolManager | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        base = endpoint if "://" in endpoint else f"https://{endpoint}"
        parts = urlsplit(base)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"not a domain endpoint: {endpoint!r}")
        self._base = f"{parts.scheme}://{parts.netloc}"
        self._host = parts.netloc
        self._region = region
        self._credentials = credentials
        self._clock = clock or SystemClock()
        self._deadline = deadline
        self._backoff = backoff or Backoff()
        self._pool = pool or urllib3.PoolManager(
            retries=False, timeout=urllib3.Timeout(connect=5.0, read=request_timeout)
        )
        self._request_timeout = request_timeout

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
        return self.request("GET", "/_cluster/health", idempotent=True)

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
        """Send one logical request; statuses in ``allow`` (e.g. 404) return instead of raising."""
        allowed = frozenset(allow)
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        started = self._clock.now()
        first_denial: float | None = None
        attempt = 0
        while True:
            try:
                status, raw = self._send(method, path, query, body)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                failure = OpenSearchError(
                    method, path, 0, "connection_error", type(exc).__name__ + ": " + str(exc)
                )
                retryable = idempotent
            else:
                if status < 300 or status in allowed:
                    return Response(status, _decode(raw))
                error_type, reason = parse_error(status, raw)
                failure = OpenSearchError(method, path, status, error_type, reason)
                retryable = status in PRE_EXECUTION_RETRY or (idempotent and status in SERVER_RETRY)
                if status == 403 and not is_propagation_denial(status, raw):
                    now = self._clock.now()
                    first_denial = now if first_denial is None else first_denial
                    if now - first_denial >= PERMANENT_DENIAL_SECONDS:
                        raise PermissionDenied(failure, now - started)
            if not retryable:
                raise failure
            delay = self._backoff.delay(attempt)
            if self._clock.now() + delay >= self._deadline:
                raise DeadlineExceeded(failure, self._clock.now() - started)
            LOG.info("retrying %s %s in %.1fs after %s", method, path, delay, failure)
            self._clock.sleep(delay)
            attempt += 1

    def _send(
        self, method: str, path: str, query: Mapping[str, str] | None, body: Any
    ) -> tuple[int, bytes]:
        if not path.startswith("/") or any(seg in (".", "..") for seg in path.split("/")):
            # A crafted id must never turn into another API's path (quote keeps "../").
            raise ValueError(f"refusing a request path with dot segments: {path[:200]!r}")
        url = self._base + quote(path, safe="/_-.~,*")
        if query:
            url += "?" + urlencode(sorted(query.items()))
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Host": self._host, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        signed = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self._credentials(), "es", self._region).add_auth(signed)
        timeout = max(1.0, min(self._request_timeout, self.remaining()))
        response = self._pool.request(
            method,
            url,
            body=data,
            headers=dict(signed.headers.items()),
            timeout=urllib3.Timeout(connect=min(5.0, timeout), read=timeout),
            retries=False,
            redirect=False,
            preload_content=True,
        )
        return response.status, response.data or b""


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return raw.decode("utf-8", "replace")

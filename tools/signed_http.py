"""The one SigV4-signed HTTP client of tools/ for the Amazon OpenSearch Service REST API.

Both tools use it: ``tools.smoke`` with the default of one attempt per call (a
broken environment must fail fast and say why) and ``tools.evaluate`` with
bounded retries (a long ingest meets the domain's and the model endpoint's
throughput limits, and must ride them out rather than start over).

Why not reuse ``lambdas/ml_setup/opensearch_client.py``: tools/ and lambdas/
ship separately (the Lambda bundle must not grow by the tools), and the Lambda
client's retry policy is tuned to a custom resource's deadline and to IAM
propagation. Why not ``requests`` or opensearch-py: the pipeline's smoke step
installs only ``requirements-smoke.txt`` (boto3), so this is the standard
library plus botocore's SigV4Auth.

Retry rules (only when ``max_retries`` > 0):

* 429 is retried for every request: the front end or OpenSearch's thread pool
  refused it before it did anything, so resending cannot apply it twice.
* 502/503/504, timeouts and dropped or refused connections may come *after*
  the request took effect, so they are retried only for idempotent requests:
  GET, HEAD, PUT, DELETE, OPTIONS, or any request whose caller says it is
  (``idempotent=True``: a search, a ``_bulk`` with explicit ids). A caller can
  also forbid it (``idempotent=False``).
* Backoff is exponential, capped, with jitter in [delay/2, delay] so parallel
  clients spread out while a retry never comes immediately.

Credentials come from botocore (environment, profile, container role, or an
assumed role): never static keys in code or configuration. They are read
again for every attempt, so refreshable credentials keep working in long runs.
"""

from __future__ import annotations

import http.client
import json
import random
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Answers that mean "not now": worth another attempt after a pause.
THROTTLED = 429
UNAVAILABLE = frozenset({502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class SignedHttpError(RuntimeError):
    """Base of this client's errors, so a caller can catch "the domain failed us" in one clause."""


class TransportError(SignedHttpError):
    """The domain did not answer at all (DNS, TLS, connection refused or dropped, timeout).

    ``retryable`` is False for a certificate that failed verification: it will
    not verify on the next attempt either, and retrying only delays the news.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class StatusError(SignedHttpError):
    """A non-2xx answer where the caller required success (see :meth:`SignedHttpClient.ok`)."""

    def __init__(self, method: str, path: str, response: Response) -> None:
        self.response = response
        super().__init__(f"{method} {path}: HTTP {response.status}: {error_text(response.body)}")


@dataclass(frozen=True)
class Response:
    """Status and decoded body (JSON, else up to 300 characters of text, else None)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def reason(self) -> str:
        """The most telling part of an error body, on one line."""
        body = self.body
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                text = error.get("reason") or error.get("type")
            else:
                text = error or body.get("message") or body.get("Message")
            if text:
                return f"HTTP {self.status}: {' '.join(str(text).split())}"
        return f"HTTP {self.status}"


def error_text(body: Any) -> str:
    """``type: reason`` of an OpenSearch error, or the message of a security-plugin/front-end one.

    Also what a ``_bulk`` item's result reads as, so callers can explain a
    refused document the same way as a refused request.
    """
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
        for key in ("message", "Message", "error"):
            if body.get(key):
                return str(body[key])
    return str(body)[:300]


def base_url(endpoint: str) -> str:
    """``search-x.es.amazonaws.com`` (a CloudFormation output) or a URL -> base URL.

    Plain HTTP is accepted for loopback only (the offline emulator): signed
    requests carry session tokens, which must never cross a network in clear.
    """
    url = endpoint if "://" in endpoint else f"https://{endpoint}"
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"not a domain endpoint: {endpoint!r}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"refusing plain HTTP to {parts.hostname}: use https")
    return f"{parts.scheme}://{parts.netloc}"


class SignedHttpClient:
    """Signs each request for service ``es`` in ``region`` with fresh botocore credentials.

    ``max_retries`` bounds the *extra* attempts per request (0, the default,
    is one attempt: the smoke test's choice). ``sleep`` and ``rng`` are
    injectable so tests can observe the backoff without waiting for it.
    ``retries_done`` counts every retry this client made, for run summaries.
    """

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: Callable[[], ReadOnlyCredentials],
        *,
        timeout: float = 30.0,
        max_retries: int = 0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base = base_url(endpoint)
        self.region = region
        self.credentials = credentials
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.sleep = sleep
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self.retries_done = 0

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        *,
        ndjson: Iterable[Mapping[str, Any]] | None = None,
        idempotent: bool | None = None,
    ) -> Response:
        """Send a JSON ``body`` (or ``ndjson`` lines for ``_bulk``) and return the answer.

        Any HTTP status is returned as a :class:`Response` (after retries, the
        last one); only "no answer at all" raises :class:`TransportError`.
        ``idempotent`` overrides the method's default for the retry rules above.
        """
        method = method.upper()
        url = self.base + path + (f"?{urlencode(params)}" if params else "")
        data, headers = _encode(body, ndjson)
        resendable = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        attempt = 0
        while True:
            try:
                response = self._send(method, url, data, headers)
            except TransportError as error:
                if attempt >= self.max_retries or not resendable or not error.retryable:
                    raise
            else:
                retryable = response.status == THROTTLED or (
                    resendable and response.status in UNAVAILABLE
                )
                if not retryable or attempt >= self.max_retries:
                    return response
            attempt += 1
            self.retries_done += 1
            self.sleep(self.backoff(attempt))

    def ok(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        *,
        ndjson: Iterable[Mapping[str, Any]] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Like :meth:`request`, but return the body; a non-2xx answer raises StatusError."""
        response = self.request(method, path, body, params, ndjson=ndjson, idempotent=idempotent)
        if not response.ok:
            raise StatusError(method, path, response)
        return response.body

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return delay * (0.5 + self.rng.random() / 2)

    def _send(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> Response:
        """One signed attempt; signed afresh each time (new timestamp, possibly new credentials)."""
        aws_request = AWSRequest(method=method, url=url, data=data, headers=dict(headers))
        SigV4Auth(self.credentials(), "es", self.region).add_auth(aws_request)
        prepared = urllib.request.Request(  # noqa: S310 - scheme checked in base_url
            url, data=data, method=method, headers=dict(aws_request.headers.items())
        )
        try:
            with urllib.request.urlopen(prepared, timeout=self.timeout) as reply:  # noqa: S310
                return Response(reply.status, _decode(reply.read()))
        except urllib.error.HTTPError as error:
            return Response(error.code, _decode(error.read()))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            # HTTPException covers a connection cut mid-body (IncompleteRead),
            # which is no OSError; the others are DNS, refusals, resets, timeouts.
            reason = getattr(error, "reason", None) or error
            untrusted = isinstance(reason, ssl.SSLCertVerificationError)
            raise TransportError(
                f"{self.base}: {str(reason) or type(error).__name__}", retryable=not untrusted
            ) from error


def _encode(
    body: Any, ndjson: Iterable[Mapping[str, Any]] | None
) -> tuple[bytes | None, dict[str, str]]:
    """Serialise once, so every retry resends (and signs) exactly the same bytes."""
    if ndjson is not None:
        if body is not None:
            raise ValueError("pass either body or ndjson, not both")
        # OpenSearch refuses a bulk body without the final newline.
        data = "".join(json.dumps(line) + "\n" for line in ndjson).encode()
        return data, {"Content-Type": "application/x-ndjson"}
    if body is not None:
        return json.dumps(body).encode(), {"Content-Type": "application/json"}
    return None, {}


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")[:300]

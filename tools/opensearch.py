"""One way for the tools to talk to the domain: opensearch-py, SigV4-signed with an IAM role.

Why opensearch-py and not a hand-written client: it is the ecosystem client the
design card names (typed APIs, the bulk serializer, connection pooling), and
its ``Urllib3AWSV4SignerAuth`` signs every request with ``get_frozen_credentials()``
so a credential refresh never mixes an old key with a new secret.

Why refreshable credentials: role chaining limits an assumed role's session to
one hour, and a large load runs longer; :func:`assumed_role_credentials`
re-assumes the role before the credentials expire instead of failing mid-load.

The client is built with no retries of its own (``max_retries=0``): each tool
decides what is safe to retry, and how long to back off (the loader's
back-pressure, tools/ingest/pace.py; :class:`SignedHttpClient`'s rules for the
smoke test, the evaluation and the migration), instead of the transport
retrying blindly.

:class:`SignedHttpClient` is the path-and-status view of that client for the
tools that speak the REST API by path (tools.smoke, tools.evaluate's stack
ingest, tools.migrate): ``request`` returns every status with its body.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth, Urllib3HttpConnection
from opensearchpy.exceptions import ConnectionError as ClientConnectionError
from opensearchpy.exceptions import SSLError as ClientSSLError

SERVICE = "es"


def endpoint_url(endpoint: str) -> str:
    """``https://host`` for a bare host name (the DomainEndpoint output), a URL as given."""
    endpoint = endpoint.strip().rstrip("/")
    if not endpoint:
        raise ValueError("empty domain endpoint")
    if "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"domain endpoint {endpoint!r} is not a host name or http(s) URL")
    return endpoint


def connect(
    endpoint: str,
    region: str,
    credentials: Any,
    *,
    timeout: float = 60.0,
    pool_maxsize: int = 10,
) -> OpenSearch:
    """An opensearch-py client signing as ``credentials`` (a botocore credentials object).

    ``pool_maxsize`` should be at least the number of threads that share the client:
    urllib3 otherwise discards and reopens connections under load.
    """
    url = endpoint_url(endpoint)
    parts = urlsplit(url)
    return OpenSearch(
        hosts=[url],
        http_auth=Urllib3AWSV4SignerAuth(credentials, region, SERVICE),
        connection_class=Urllib3HttpConnection,
        use_ssl=parts.scheme == "https",
        verify_certs=parts.scheme == "https",
        timeout=timeout,
        max_retries=0,
        retry_on_timeout=False,
        pool_maxsize=pool_maxsize,
    )


def assumed_role_credentials(
    session: boto3.Session, role_arn: str, region: str, session_name: str
) -> Credentials:
    """Credentials of ``role_arn`` that re-assume the role shortly before they expire."""
    sts = session.client("sts", region_name=region)

    def fetch() -> dict[str, str]:
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        expiry = creds["Expiration"]
        if isinstance(expiry, dt.datetime):
            expiry = expiry.astimezone(dt.UTC).isoformat()
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": str(expiry),
        }

    return RefreshableCredentials.create_from_metadata(
        metadata=fetch(), refresh_using=fetch, method="sts-assume-role"
    )


# ----------------------------------------------------------------------------- path client
#
# The smoke test, the evaluation's stack ingest and the migration speak the REST
# API by path and branch on the status of every answer; this adapter gives them
# that (``request`` -> status and body, ``ok`` -> body or StatusError) on top of
# the opensearch-py client above, so the SigV4 signing, the connection pool and
# the HTTP transport are opensearch-py's.

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Answers that mean "not now": worth another attempt after a pause.
THROTTLED = 429
UNAVAILABLE = frozenset({502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Every status is an answer the caller reads: the connection must not raise for any.
_ANY_STATUS = range(100, 600)

# opensearch-py logs each failed attempt at WARNING with a traceback. A handler on
# its logger keeps Python's last-resort handler from printing that to a tool's
# stderr (the tools report each failure on one line themselves); a program that
# configures logging still receives the records.
logging.getLogger("opensearch").addHandler(logging.NullHandler())


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


class _PerRequestCredentials:
    """Our credential callable as what opensearch-py's signer reads once per request."""

    def __init__(self, source: Callable[[], ReadOnlyCredentials]) -> None:
        self._source = source

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        return self._source()


class SignedHttpClient:
    """Path requests through opensearch-py, signed for ``es`` in ``region``, with bounded retries.

    opensearch-py's own retries are off (``max_retries=0`` in :func:`connect`):
    they would resend a POST after a dropped connection. Ours (only when
    ``max_retries`` > 0; 0, the default, is the smoke test's one attempt):

    * 429 is retried for every request: the front end or OpenSearch's thread pool
      refused it before it did anything, so resending cannot apply it twice.
    * 502/503/504, timeouts and dropped or refused connections may come *after*
      the request took effect, so they are retried only for idempotent requests:
      GET, HEAD, PUT, DELETE, OPTIONS, or any request whose caller says it is
      (``idempotent=True``: a search, a ``_bulk`` with explicit ids). A caller can
      also forbid it (``idempotent=False``).
    * Backoff is exponential, capped, with jitter in [delay/2, delay] so parallel
      clients spread out while a retry never comes immediately.

    ``credentials`` is called for every attempt (each is signed afresh), so
    refreshable credentials keep working in long runs. ``sleep`` and ``rng`` are
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
        self.client = connect(
            self.base, region, _PerRequestCredentials(credentials), timeout=timeout
        )

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
        data, headers = _encode(body, ndjson)
        resendable = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        attempt = 0
        while True:
            try:
                response = self._send(method, path, params, data, headers)
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

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: dict[str, str],
    ) -> Response:
        """One attempt on opensearch-py's connection, which signs it afresh.

        The connection, not ``transport.perform_request``: that returns the body
        only and raises for error statuses, and callers read every status.
        """
        connection = self.client.transport.get_connection()
        try:
            status, _headers, raw = connection.perform_request(
                method,
                path,
                dict(params) if params else None,
                data,
                timeout=self.timeout,
                ignore=_ANY_STATUS,
                headers=headers,
            )
        except ClientConnectionError as error:
            # DNS, refusals, resets, a connection cut mid-body, timeouts, TLS.
            cause = error.info if isinstance(error.info, BaseException) else error
            text = str(cause) or type(cause).__name__
            untrusted = isinstance(error, ClientSSLError) and _unverified(cause)
            raise TransportError(f"{self.base}: {text}", retryable=not untrusted) from error
        return Response(status, _decode(raw))


def _unverified(error: BaseException) -> bool:
    """True if a TLS failure is a certificate that did not verify (anywhere in the chain)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or any(
            isinstance(arg, ssl.SSLCertVerificationError) for arg in seen.args
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return "certificate verify failed" in str(error).lower()


def _encode(
    body: Any, ndjson: Iterable[Mapping[str, Any]] | None
) -> tuple[bytes | None, dict[str, str]]:
    """Serialise once, so every retry resends (and signs) exactly the same bytes."""
    if ndjson is not None:
        if body is not None:
            raise ValueError("pass either body or ndjson, not both")
        # OpenSearch refuses a bulk body without the final newline.
        data = "".join(json.dumps(line) + "\n" for line in ndjson).encode()
        # Lower case: opensearch-py's own default header is "content-type".
        return data, {"content-type": "application/x-ndjson"}
    if body is not None:
        return json.dumps(body).encode(), {"content-type": "application/json"}
    return None, {}


def _decode(raw: str | bytes | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        return text[:300]

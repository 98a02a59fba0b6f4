"""A small SigV4-signed JSON-over-HTTPS client for the Amazon OpenSearch Service REST API.

Why not reuse ``lambdas/ml_setup/opensearch_client.py``: tools/ and lambdas/
ship separately (the Lambda bundle must not grow by the tools, and the smoke
step installs only ``requirements-smoke.txt``), and the Lambda client's retry
policy is tuned to a custom resource's deadline. The smoke test wants the
opposite: one attempt per call, so a broken environment fails fast and says why.

Credentials come from botocore (environment, profile, container role, or an
assumed role): never static keys in code or configuration. They are read
again for every request, so refreshable credentials keep working in long runs.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class TransportError(RuntimeError):
    """The domain did not answer at all (DNS, TLS, connection refused, timeout)."""


@dataclass(frozen=True)
class Response:
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
    """Signs each request for service ``es`` in ``region`` with fresh botocore credentials."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: Callable[[], ReadOnlyCredentials],
        *,
        timeout: float = 30.0,
    ) -> None:
        self.base = base_url(endpoint)
        self.region = region
        self.credentials = credentials
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Response:
        url = self.base + path + (f"?{urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        aws_request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self.credentials(), "es", self.region).add_auth(aws_request)
        prepared = urllib.request.Request(  # noqa: S310 - scheme checked in base_url
            url, data=data, method=method, headers=dict(aws_request.headers.items())
        )
        try:
            with urllib.request.urlopen(prepared, timeout=self.timeout) as reply:  # noqa: S310
                return Response(reply.status, _json(reply.read()))
        except urllib.error.HTTPError as error:
            return Response(error.code, _json(error.read()))
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TransportError(f"{self.base}: {reason}") from error


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")[:300]

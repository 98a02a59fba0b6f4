"""Signed requests for tests, independent of the client under test (urllib3 + SigV4Auth)."""

from __future__ import annotations

import json
from typing import Any

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from tests.support.opensearch_emulator import OpenSearchEmulator, Principal

_POOL = urllib3.PoolManager(retries=False)


def signed_request(
    emulator: OpenSearchEmulator,
    principal: Principal,
    method: str,
    path: str,
    body: Any = None,
    *,
    service: str = "es",
    secret: str | None = None,
) -> tuple[int, Any]:
    """Send one request signed as ``principal`` (or with a wrong ``secret``/``service``)."""
    url = emulator.endpoint + path
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    request = AWSRequest(method=method, url=url, data=data, headers=headers)
    credentials = principal.credentials
    if secret is not None:
        credentials = credentials._replace(secret_key=secret)
    SigV4Auth(credentials, service, emulator.region).add_auth(request)
    response = _POOL.request(method, url, body=data, headers=dict(request.headers.items()))
    text = response.data.decode() if response.data else ""
    return response.status, json.loads(text) if text else None

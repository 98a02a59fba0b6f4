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
back-pressure, tools/ingest/pace.py), instead of the transport retrying blindly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.credentials import Credentials, RefreshableCredentials
from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth, Urllib3HttpConnection

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

"""The two identities the handlers sign with, as botocore credentials.

* The setup role: the Lambda's execution role, from the runtime environment.
* The FGAC master role: assumed with STS, only by Custom::MlAccessMapping,
  only to write security-plugin role mappings. The session is short (15
  minutes, the Lambda maximum) and refreshed before it expires.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.credentials import ReadOnlyCredentials

from .opensearch_client import CredentialSource

SESSION_SECONDS = 900
REFRESH_MARGIN = timedelta(minutes=2)


def setup_credentials() -> CredentialSource:
    """The execution role's credentials (refreshable; frozen per request)."""
    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials in the Lambda environment")
    return credentials.get_frozen_credentials


def assume_role(sts_client: Any, role_arn: str, session_name: str) -> CredentialSource:
    """A credential source for ``role_arn`` that re-assumes shortly before expiry."""
    lock = threading.Lock()
    state: dict[str, Any] = {}

    def current() -> ReadOnlyCredentials:
        with lock:
            expires = state.get("expires")
            if expires is None or datetime.now(UTC) >= expires - REFRESH_MARGIN:
                answer = sts_client.assume_role(
                    RoleArn=role_arn,
                    RoleSessionName=session_name,
                    DurationSeconds=SESSION_SECONDS,
                )
                creds = answer["Credentials"]
                state["frozen"] = ReadOnlyCredentials(
                    creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
                )
                expiration = creds["Expiration"]
                state["expires"] = (
                    expiration
                    if isinstance(expiration, datetime)
                    else datetime.now(UTC) + timedelta(seconds=SESSION_SECONDS)
                )
            return state["frozen"]

    return current


def sts_assumer() -> Any:
    """assume_role bound to a regional STS client of the Lambda's region."""
    client = boto3.client("sts", region_name=os.environ.get("AWS_REGION"))
    return lambda role_arn, session_name: assume_role(client, role_arn, session_name)

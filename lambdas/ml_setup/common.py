"""What every resource kind shares: the runtime (identities, clock), the
per-invocation context, the outcome type, and ML Commons helpers used by more
than one resource (finding objects by name, model deployment state).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .opensearch_client import (
    Backoff,
    Clock,
    CredentialSource,
    DeadlineExceeded,
    OpenSearchClient,
    OpenSearchError,
)
from .properties import REGION, Props

LOG = logging.getLogger(__name__)


class SetupError(Exception):
    """A failure worded for the CloudFormation event: what failed and OpenSearch's reason."""


# ML Commons indexes connectors, groups and models without an id, so their ids
# are OpenSearch's auto-generated document ids: 20 URL-safe base64 characters
# (ml-commons 3.7.0.0 plugin/src/main/java/org/opensearch/ml/model/MLModelManager.java:379
# indexes with no id; IndexRequest.autoGenerateId -> UUIDs.base64UUID). Anything else (a request
# id CloudFormation substituted, a crafted "../" path) is not ours.
ML_ID = r"[A-Za-z0-9_\-]{20}"


def is_ml_id(value: str) -> bool:
    """True if ``value`` has the shape of an id ML Commons generates."""
    return re.fullmatch(ML_ID, value or "") is not None


def require_ml_id(value: str, what: str) -> str:
    """``value`` if it is an ML Commons id; otherwise fail before any call."""
    if not is_ml_id(value):
        raise SetupError(f"{what} {value[:80]!r} is not an ML Commons id")
    return value


@dataclass
class Runtime:
    """Process-wide dependencies; tests build one with a fake clock and test identities."""

    clock: Clock
    setup_credentials: CredentialSource
    assume_role: Callable[[str, str], CredentialSource]
    wait_timeout_seconds: float
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True)
class Outcome:
    """Result of on_event: the physical id, the attributes, and what is_complete must wait for."""

    physical_id: str
    data: dict[str, str]
    wait: dict[str, Any] | None = None


@dataclass
class Ctx:
    """One Lambda invocation: the domain, the deadline, and clients per identity."""

    runtime: Runtime
    endpoint: str
    region: str
    deadline: float
    request_type: str
    _clients: dict[str, OpenSearchClient] = field(default_factory=dict)

    @classmethod
    def from_props(cls, runtime: Runtime, props: Props, deadline: float, request_type: str) -> Ctx:
        return cls(
            runtime=runtime,
            endpoint=props.string(
                "DomainEndpoint",
                pattern=r"(https?://)?[A-Za-z0-9.\-]+(:\d+)?/?",
                what="the domain endpoint host name",
            ),
            region=props.string("Region", pattern=REGION, what="an AWS region"),
            deadline=deadline,
            request_type=request_type,
        )

    def now(self) -> float:
        return self.runtime.clock.now()

    def _client(self, key: str, credentials: CredentialSource) -> OpenSearchClient:
        if key not in self._clients:
            self._clients[key] = OpenSearchClient(
                self.endpoint,
                self.region,
                credentials,
                deadline=self.deadline,
                clock=self.runtime.clock,
                backoff=self.runtime.backoff,
            )
        return self._clients[key]

    def setup_client(self) -> OpenSearchClient:
        """The Lambda's own identity: ML Commons objects and the app's index."""
        return self._client("setup", self.runtime.setup_credentials)

    def master_client(self, master_role_arn: str) -> OpenSearchClient:
        """The FGAC master identity: used only to write security-plugin mappings."""
        session = "ml-setup-role-mappings"
        return self._client(
            "master:" + master_role_arn, self.runtime.assume_role(master_role_arn, session)
        )

    def wait_deadline(self) -> float:
        """Absolute time after which is_complete stops waiting and fails (and cleans up)."""
        return self.now() + self.runtime.wait_timeout_seconds


def config_hash(value: Any, length: int = 10) -> str:
    """Stable short hash of a JSON-able value: names derived from it change exactly when it does."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def search_hits(client: OpenSearchClient, path: str, query: dict[str, Any]) -> list[dict]:
    """Run an ML Commons ``_search``; a not-yet-created system index means no hits."""
    response = client.request(
        "POST", path, body={"query": query, "size": 100}, allow=(404,), idempotent=True
    )
    if response.status == 404 or not isinstance(response.body, dict):
        return []
    return list(response.body.get("hits", {}).get("hits", []))


def find_by_name(client: OpenSearchClient, kind: str, name: str) -> list[dict]:
    """Objects of ``kind`` (connectors, models, model_groups) whose name is exactly ``name``.

    The ``name`` field of these system indices is text with a ``keyword``
    sub-field, so an exact term query on ``name.keyword``; the hit's source is
    compared again because a search over text is not a proof of equality.
    """
    hits = search_hits(client, f"/_plugins/_ml/{kind}/_search", {"term": {"name.keyword": name}})
    return [h for h in hits if h.get("_source", {}).get("name") == name]


def create_once(
    client: OpenSearchClient,
    find: Callable[[], str | None],
    create: Callable[[], str],
    what: str,
) -> tuple[str, bool]:
    """Find-or-create without duplicates when a create's outcome is unknown.

    A POST answered with 5xx or cut off may still have created the object, so
    blind retries duplicate it. Instead: create once, and after an ambiguous
    failure look the object up by name before creating again.
    Returns (id, created_now).
    """
    existing = find()
    if existing:
        LOG.info("%s already exists: %s", what, existing)
        return existing, False
    attempt = 0
    while True:
        try:
            return create(), True
        except OpenSearchError as exc:
            ambiguous = exc.status == 0 or exc.status >= 500
            if not ambiguous or isinstance(exc, DeadlineExceeded):
                raise
            found = find()
            if found:
                LOG.info("%s was created despite %s: %s", what, exc, found)
                return found, True
            attempt += 1
            if not client.pause(attempt):
                raise
            LOG.info("creating %s again after %s", what, exc)


def best_effort(action: Callable[[], None]) -> None:
    """Run a cleanup whose failure must not mask the failure that triggered it."""
    try:
        action()
    except Exception as exc:
        LOG.warning("cleanup after a failure also failed: %s", exc)


DEPLOYED_STATES = frozenset({"DEPLOYED", "LOADED"})
IN_PROGRESS_STATES = frozenset({"DEPLOYING", "LOADING", "PARTIALLY_DEPLOYED", "PARTIALLY_LOADED"})
# States in which ML Commons refuses to delete a model ("undeploy model first").
UNDEPLOY_BEFORE_DELETE = DEPLOYED_STATES | IN_PROGRESS_STATES


# The model and task calls below use opensearch-py's typed ML Commons API
# (client.plugins.ml) under OpenSearchClient's retry rules; the path beside each
# is what it sends, for errors and the dot-segment check.


def get_model(client: OpenSearchClient, model_id: str) -> dict | None:
    response = client.call(
        "GET",
        f"/_plugins/_ml/models/{model_id}",
        lambda os, timeout: os.plugins.ml.get_model(model_id=model_id, request_timeout=timeout),
        allow=(404,),
    )
    return None if response.status == 404 else response.body


def deploy(client: OpenSearchClient, model_id: str) -> str | None:
    """Start deploying; returns the task id (its error is the reason if deployment fails)."""
    response = client.call(
        "POST",
        f"/_plugins/_ml/models/{model_id}/_deploy",
        lambda os, timeout: os.plugins.ml.deploy_model(model_id=model_id, request_timeout=timeout),
        idempotent=True,
    )
    body = response.body if isinstance(response.body, dict) else {}
    return body.get("task_id")


def undeploy(client: OpenSearchClient, model_id: str) -> None:
    client.call(
        "POST",
        f"/_plugins/_ml/models/{model_id}/_undeploy",
        lambda os, timeout: os.plugins.ml.undeploy_model(
            model_id=model_id, request_timeout=timeout
        ),
        allow=(404,),
        idempotent=True,
    )


def task_error(client: OpenSearchClient, task_id: str | None) -> str | None:
    """The error ML Commons recorded on a deploy task, if any."""
    if not task_id:
        return None
    response = client.call(
        "GET",
        f"/_plugins/_ml/tasks/{task_id}",
        lambda os, timeout: os.plugins.ml.get_task(task_id=task_id, request_timeout=timeout),
        allow=(404,),
    )
    if response.status == 404 or not isinstance(response.body, dict):
        return None
    error = response.body.get("error")
    return str(error) if error else None


@dataclass
class DeployCheck:
    """Where one model's deployment stands."""

    done: bool
    failure: str | None = None


def check_deployment(
    client: OpenSearchClient, model_id: str, task_id: str | None, *, deadline: float, now: float
) -> DeployCheck:
    """One poll of a deployment: DEPLOYED, still going, or failed with OpenSearch's reason."""
    model = get_model(client, model_id)
    if model is None:
        return DeployCheck(False, f"model {model_id} no longer exists")
    state = str(model.get("model_state", ""))
    if state in DEPLOYED_STATES:
        return DeployCheck(True)
    if state == "DEPLOY_FAILED":
        reason = task_error(client, task_id) or "ML Commons reported model_state DEPLOY_FAILED"
        return DeployCheck(False, f"model {model_id} failed to deploy: {reason}")
    error = task_error(client, task_id)
    if error and state not in IN_PROGRESS_STATES:
        return DeployCheck(False, f"model {model_id} failed to deploy: {error}")
    if now >= deadline:
        return DeployCheck(
            False,
            f"model {model_id} was not deployed in time (model_state {state or 'unknown'}); "
            "see the domain's application logs",
        )
    return DeployCheck(False)

"""Custom::MlConnector: the ML Commons connector to the SageMaker endpoint.

The connector signs its calls with an IAM role that OpenSearch assumes
(``credential.roleArn``), never with keys. Its request body passes the texts
and the ``content_type`` that neural-search sets per call (``query`` at search
time, ``passage`` at ingest); ``content_type`` is deliberately absent from the
connector's ``parameters``, which are defaults a call's parameters override: a
default there would be sent whenever a caller omits it.

Every property is updated in place, keeping the connector id (and so the
model and the index). ML Commons refuses to update a connector that a deployed
model uses, so an update undeploys those models, updates the connector and
redeploys them; is_complete waits until they are DEPLOYED again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from . import common
from .common import Ctx, Outcome, SetupError
from .opensearch_client import OpenSearchClient, OpenSearchError
from .properties import ENDPOINT_NAME, OBJECT_NAME, REGION, ROLE_ARN, Props

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = "Custom::MlConnector"
REQUEST_BODY = '{ "texts": ${parameters.texts}, "content_type": "${parameters.content_type}" }'
BACKOFF_POLICIES = ("constant", "exponential_equal_jitter", "exponential_full_jitter")


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    endpoint_name: str
    endpoint_region: str
    url_suffix: str
    role_arn: str
    client_config: dict[str, Any]

    @classmethod
    def parse(cls, props: Props) -> Spec:
        return cls(
            name=props.string("Name", pattern=OBJECT_NAME, what="a connector name"),
            description=props.string("Description", default="SageMaker embedding endpoint"),
            endpoint_name=props.string(
                "EndpointName", pattern=ENDPOINT_NAME, what="a SageMaker endpoint name"
            ),
            endpoint_region=props.string("EndpointRegion", pattern=REGION, what="an AWS region"),
            url_suffix=props.string(
                "UrlSuffix", default="amazonaws.com", pattern=r"[a-z0-9.\-]+", what="a DNS suffix"
            ),
            role_arn=props.string("ConnectorRoleArn", pattern=ROLE_ARN, what="an IAM role ARN"),
            client_config={
                "max_connection": props.integer("MaxConnections", lo=1, hi=1000),
                "connection_timeout": props.integer(
                    "ConnectionTimeoutSeconds", lo=1, hi=300, default=10
                ),
                "read_timeout": props.integer("ReadTimeoutSeconds", lo=1, hi=600, default=60),
                "max_retry_times": props.integer("MaxRetryTimes", lo=0, hi=20, default=5),
                "retry_backoff_millis": props.integer(
                    "RetryBackoffMillis", lo=10, hi=60000, default=200
                ),
                "retry_timeout_seconds": props.integer(
                    "RetryTimeoutSeconds", lo=1, hi=3600, default=60
                ),
                "retry_backoff_policy": props.choice(
                    "RetryBackoffPolicy", BACKOFF_POLICIES, default="exponential_full_jitter"
                ),
            },
        )

    def body(self) -> dict[str, Any]:
        """The connector document, as DESIGN.md specifies it."""
        url = (
            f"https://runtime.sagemaker.{self.endpoint_region}.{self.url_suffix}"
            f"/endpoints/{self.endpoint_name}/invocations"
        )
        return {
            "name": self.name,
            "description": self.description,
            "version": 1,
            "protocol": "aws_sigv4",
            "parameters": {"region": self.endpoint_region, "service_name": "sagemaker"},
            "credential": {"roleArn": self.role_arn},
            "actions": [
                {
                    "action_type": "predict",
                    "method": "POST",
                    "url": url,
                    "headers": {"content-type": "application/json"},
                    "request_body": REQUEST_BODY,
                }
            ],
            "client_config": dict(self.client_config),
        }


def _find(client: OpenSearchClient, name: str) -> str | None:
    hits = common.find_by_name(client, "connectors", name)
    if len(hits) > 1:
        LOG.warning("%d connectors named %s; using %s", len(hits), name, hits[0]["_id"])
    return hits[0]["_id"] if hits else None


def _create(client: OpenSearchClient, spec: Spec) -> str:
    response = client.request(
        "POST", "/_plugins/_ml/connectors/_create", body=spec.body(), idempotent=False
    )
    connector_id = response.body.get("connector_id") if isinstance(response.body, dict) else None
    if not connector_id:
        raise SetupError(f"connector create returned no connector_id: {response.body!r}")
    return str(connector_id)


def _models_using(client: OpenSearchClient, connector_id: str) -> list[dict]:
    # connector_id is a dynamically mapped text field in the model index, so
    # the match may return look-alikes: keep exact matches only.
    hits = common.search_hits(
        client, "/_plugins/_ml/models/_search", {"match": {"connector_id": connector_id}}
    )
    return [h for h in hits if h.get("_source", {}).get("connector_id") == connector_id]


# ML Commons' refusal to update a connector that a loaded model uses (ml-commons
# 3.7.0.0 plugin/src/main/java/org/opensearch/ml/action/connector/
# UpdateConnectorTransportAction.java:177-218); it lists the model ids.
STILL_USED = re.compile(r"still using this connector, please undeploy the models first: \[(.*)\]")
UPDATE_ATTEMPTS = 5


def _still_used_by(exc: OpenSearchError) -> list[str] | None:
    """The model ids of a "still using this connector" 400, or None for any other failure."""
    found = STILL_USED.search(exc.reason) if exc.status == 400 else None
    if found is None:
        return None
    return [m.strip("'\"") for m in re.split(r"[,\s]+", found.group(1)) if m.strip("'\"")]


def _update_in_place(client: OpenSearchClient, connector_id: str, spec: Spec, ctx: Ctx) -> Outcome:
    """Undeploy the models that use the connector, update it, redeploy them.

    Live traffic can undo the undeploy: with plugins.ml_commons.model_auto_deploy.enable
    on (the default, MLCommonsSettings.java:165-166) a neural query or an ingest
    between our undeploy and the PUT deploys the model again (MLPredictTaskRunner.java:
    247-288) and the PUT is refused. So on that answer the models it names are
    undeployed again and the PUT repeated at once, a bounded number of times.
    This keeps the connector and model ids (a new connector and model would move
    the index to a new model id for a change that needs none); queries during the
    window fail or redeploy either way.
    """
    redeploy: list[str] = []
    for hit in _models_using(client, connector_id):
        state = hit.get("_source", {}).get("model_state")
        if state in common.UNDEPLOY_BEFORE_DELETE:
            redeploy.append(hit["_id"])
    to_undeploy = list(redeploy)
    attempt = 0
    while True:
        for model_id in to_undeploy:
            common.undeploy(client, model_id)
        try:
            client.request("PUT", f"/_plugins/_ml/connectors/{connector_id}", body=spec.body())
            break
        except OpenSearchError as exc:
            users = _still_used_by(exc)
            attempt += 1
            if users is None or attempt >= UPDATE_ATTEMPTS:
                for model_id in redeploy:
                    common.best_effort(lambda m=model_id: common.deploy(client, m))
                if users is None:
                    raise
                raise SetupError(
                    f"connector {connector_id}: models {', '.join(users)} were deployed again "
                    f"(ML Commons auto-deploy on live traffic) before each of {UPDATE_ATTEMPTS} "
                    "undeploy-and-update attempts; retry the update when traffic is lower"
                ) from exc
            LOG.info("models %s were redeployed by traffic; undeploying again", users)
            # Never a crafted id into a path: an unexpected name means "all we know".
            to_undeploy = [m for m in users if common.is_ml_id(m)]
            if len(to_undeploy) != len(users) or not users:
                to_undeploy = list(redeploy)
            users = to_undeploy
            redeploy.extend(m for m in users if m not in redeploy)
    tasks = {model_id: common.deploy(client, model_id) for model_id in redeploy}
    wait = (
        {"kind": "redeploy", "tasks": tasks, "deadline": ctx.wait_deadline()} if redeploy else None
    )
    return Outcome(connector_id, {"ConnectorId": connector_id}, wait)


def create(props: Props, ctx: Ctx) -> Outcome:
    spec = Spec.parse(props)
    client = ctx.setup_client()
    client.wait_until_available()
    connector_id, created = common.create_once(
        client, lambda: _find(client, spec.name), lambda: _create(client, spec), "connector"
    )
    if not created:
        # A retried create found what an earlier attempt made: bring it up to date.
        return _update_in_place(client, connector_id, spec, ctx)
    return Outcome(connector_id, {"ConnectorId": connector_id})


def update(props: Props, old_props: Props, physical_id: str, ctx: Ctx) -> Outcome:
    spec = Spec.parse(props)
    common.require_ml_id(physical_id, "connector physical id")
    client = ctx.setup_client()
    client.wait_until_available()
    exists = client.request("GET", f"/_plugins/_ml/connectors/{physical_id}", allow=(404,))
    if exists.status == 404:
        # Deleted behind CloudFormation's back: make a new one (new id; the
        # model follows, and the delete of the old id finds nothing).
        LOG.warning("connector %s is gone; creating it again", physical_id)
        return create(props, ctx)
    if spec == Spec.parse(old_props):
        return Outcome(physical_id, {"ConnectorId": physical_id})
    return _update_in_place(client, physical_id, spec, ctx)


def delete(props: Props, physical_id: str, ctx: Ctx) -> None:
    if not common.is_ml_id(physical_id):
        # Not one of ours (CloudFormation sends its request id when a Create
        # failed before returning one): nothing to delete, and no call to make.
        LOG.warning("physical id %r is not a connector id; nothing to delete", physical_id[:80])
        return
    client = ctx.setup_client()
    client.wait_until_available()
    client.request("DELETE", f"/_plugins/_ml/connectors/{physical_id}", allow=(404,))


def poll(props: Props, physical_id: str, wait: dict[str, Any], ctx: Ctx) -> Outcome | None:
    """Wait for the models an update redeployed; fail with ML Commons' reason if one fails."""
    common.require_ml_id(physical_id, "connector physical id")
    for model_id in dict(wait.get("tasks", {})):
        common.require_ml_id(str(model_id), "model id")
    client = ctx.setup_client()
    pending = False
    for model_id, task_id in dict(wait.get("tasks", {})).items():
        check = common.check_deployment(
            client, model_id, task_id, deadline=float(wait["deadline"]), now=ctx.now()
        )
        if check.failure:
            raise SetupError(f"connector {physical_id} was updated, but {check.failure}")
        pending = pending or not check.done
    return None if pending else Outcome(physical_id, {"ConnectorId": physical_id})

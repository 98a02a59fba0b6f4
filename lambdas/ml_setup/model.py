"""Custom::MlModel: the asymmetric remote model, registered and deployed.

ML Commons nodes cache a model's config, so a config change never edits a
model: it registers a new one (a new physical id). CloudFormation then sends
Delete for the old id, which undeploys and deletes it. The model's name is the
configured base name plus a hash of everything that defines it, so a retried
create finds the model an earlier attempt registered instead of adding a
duplicate, and two configs never share a name.

Every model gets its own model group (same name), registered explicitly:
ML Commons would create one implicitly, but never deletes it, and a leftover
group blocks the next registration under that name. Delete removes both.

Failure handling: a Create that fails in on_event gets no Delete from the
Provider framework, and a deployment that fails in is_complete may leave a new
model that CloudFormation never learns about, so both clean up the model they
registered before reporting the failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from . import common
from .common import Ctx, Outcome, SetupError
from .opensearch_client import OpenSearchClient, OpenSearchError
from .properties import OBJECT_NAME, Props

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = "Custom::MlModel"
SPACE_TYPES = ("cosinesimil", "innerproduct", "l2")
ID = r"[A-Za-z0-9_\-]{1,128}"


@dataclass(frozen=True)
class Spec:
    base_name: str
    description: str
    connector_id: str
    model_config: dict[str, Any]

    @classmethod
    def parse(cls, props: Props) -> Spec:
        additional: dict[str, Any] = {
            "space_type": props.choice("SpaceType", SPACE_TYPES),
            # A JSON boolean: CloudFormation's "true" string would not be
            # recognised as the asymmetric flag by neural-search.
            "is_asymmetric": props.boolean("IsAsymmetric"),
        }
        if props.has("ModelFamily"):
            additional["model_family"] = props.string("ModelFamily")
        for key, prop in (("query_prefix", "QueryPrefix"), ("passage_prefix", "PassagePrefix")):
            if props.contains(prop):  # an empty prefix is a valid choice
                additional[key] = props.string(prop, allow_empty=True, what="a string")
        if additional["is_asymmetric"] and not (
            additional.get("query_prefix") or additional.get("passage_prefix")
        ):
            raise SetupError(
                f"{RESOURCE_TYPE}: IsAsymmetric is true but neither QueryPrefix nor "
                "PassagePrefix is set"
            )
        return cls(
            base_name=props.string("ModelName", pattern=OBJECT_NAME, what="a model name"),
            description=props.string("Description", default="Asymmetric remote embedding model"),
            connector_id=props.string("ConnectorId", pattern=ID, what="a connector id"),
            model_config={
                "model_type": props.string("ModelType", default="TEXT_EMBEDDING"),
                "embedding_dimension": props.integer("EmbeddingDimension", lo=1, hi=16000),
                "framework_type": props.string("FrameworkType", default="SENTENCE_TRANSFORMERS"),
                "additional_config": additional,
            },
        )

    @property
    def name(self) -> str:
        """Base name + hash of what a model cannot change in place."""
        identity = {"connector_id": self.connector_id, "model_config": self.model_config}
        return f"{self.base_name}-{common.config_hash(identity)}"


def _find_group(client: OpenSearchClient, name: str) -> str | None:
    hits = common.find_by_name(client, "model_groups", name)
    return hits[0]["_id"] if hits else None


# ML Commons' answer when a group names an access mode on a domain whose model
# access control is off (ml-commons 3.7.0.0 MLModelGroupManager.java:321-328).
ACCESS_CONTROL_OFF = "model access control is disabled"


def _register_group(client: OpenSearchClient, spec: Spec) -> str:
    """Register the group as public: every identity ML Commons lets predict may use it.

    With plugins.ml_commons.model_access_control_enabled on, a group registered
    without a mode is private to its owner, the setup role (ml-commons 3.7.0.0
    MLModelGroupManager.java:178-190), and the search-client role's neural
    queries and ingest get 403. "restricted" to the client role is no option:
    a non-admin may name only backend roles it has itself (:209-213), and
    add_all_backend_roles would add the setup role's. Who may predict at all is
    still the security plugin's decision (cluster:admin/opensearch/ml/predict,
    granted to the search-client role only). A domain with access control off
    refuses the field (:321-328): register again without it.
    """
    body = {"name": spec.name, "description": spec.description, "access_mode": "public"}
    try:
        response = client.request(
            "POST", "/_plugins/_ml/model_groups/_register", body=body, idempotent=False
        )
    except OpenSearchError as exc:
        if exc.status != 400 or ACCESS_CONTROL_OFF not in exc.reason:
            raise
        LOG.info("model access control is off on this domain; registering without access_mode")
        del body["access_mode"]
        response = client.request(
            "POST", "/_plugins/_ml/model_groups/_register", body=body, idempotent=False
        )
    group_id = response.body.get("model_group_id") if isinstance(response.body, dict) else None
    if not group_id:
        raise SetupError(f"model group register returned no model_group_id: {response.body!r}")
    return str(group_id)


def _find_model(client: OpenSearchClient, name: str, group_id: str) -> str | None:
    hits = [
        h
        for h in common.find_by_name(client, "models", name)
        if h.get("_source", {}).get("model_group_id") == group_id
    ]
    return hits[0]["_id"] if hits else None


def _register(client: OpenSearchClient, spec: Spec, group_id: str) -> str:
    response = client.request(
        "POST",
        "/_plugins/_ml/models/_register",
        body={
            "name": spec.name,
            "function_name": "remote",
            "model_group_id": group_id,
            "description": spec.description,
            "connector_id": spec.connector_id,
            "model_config": spec.model_config,
        },
        idempotent=False,
    )
    model_id = response.body.get("model_id") if isinstance(response.body, dict) else None
    if not model_id:
        raise SetupError(f"model register returned no model_id: {response.body!r}")
    return str(model_id)


def _provision(client: OpenSearchClient, spec: Spec, ctx: Ctx) -> Outcome:
    """Find or register the model for ``spec`` and start its deployment."""
    connector = client.request("GET", f"/_plugins/_ml/connectors/{spec.connector_id}", allow=(404,))
    if connector.status == 404:
        raise SetupError(f"connector {spec.connector_id} does not exist")
    group_id, _ = common.create_once(
        client,
        lambda: _find_group(client, spec.name),
        lambda: _register_group(client, spec),
        "model group",
    )
    try:
        model_id, _ = common.create_once(
            client,
            lambda: _find_model(client, spec.name, group_id),
            lambda: _register(client, spec, group_id),
            "model",
        )
    except Exception:
        common.best_effort(lambda: _delete_group(client, group_id))
        raise
    try:
        task_id = _start_deploy(client, model_id)
    except Exception:
        common.best_effort(lambda: _remove(client, model_id, group_id))
        raise
    return Outcome(
        model_id,
        {"ModelId": model_id, "ModelName": spec.name},
        {
            "kind": "deploy",
            "task_id": task_id,
            "deadline": ctx.wait_deadline(),
            "cleanup_on_failure": True,
        },
    )


def _start_deploy(client: OpenSearchClient, model_id: str) -> str | None:
    model = common.get_model(client, model_id) or {}
    state = model.get("model_state")
    if state in common.DEPLOYED_STATES or state in common.IN_PROGRESS_STATES:
        return None
    return common.deploy(client, model_id)


def create(props: Props, ctx: Ctx) -> Outcome:
    spec = Spec.parse(props)
    client = ctx.setup_client()
    client.wait_until_available()
    return _provision(client, spec, ctx)


def update(props: Props, old_props: Props, physical_id: str, ctx: Ctx) -> Outcome:
    spec = Spec.parse(props)
    common.require_ml_id(physical_id, "model physical id")
    client = ctx.setup_client()
    client.wait_until_available()
    current = common.get_model(client, physical_id)
    if current is None or current.get("name") != spec.name:
        # New config (or the model vanished): a new model, a new physical id.
        return _provision(client, spec, ctx)
    if current.get("description") != spec.description:
        current = _update_description(client, physical_id, spec.description) or current
    data = {"ModelId": physical_id, "ModelName": spec.name}
    if current.get("model_state") in common.DEPLOYED_STATES:
        return Outcome(physical_id, data)
    # Undeployed behind our back (or never finished): deploy again and wait,
    # but never delete the model CloudFormation already knows on failure.
    task_id = _start_deploy(client, physical_id)
    wait = {
        "kind": "deploy",
        "task_id": task_id,
        "deadline": ctx.wait_deadline(),
        "cleanup_on_failure": False,
    }
    return Outcome(physical_id, data, wait)


def _update_description(client: OpenSearchClient, model_id: str, description: str) -> dict | None:
    """PUT the new description, waiting out a deployment in progress.

    ML Commons refuses to update a model while it deploys: 409 "Model is
    deploying. Please wait ..." (ml-commons 3.7.0.0 UpdateModelTransportAction.java:
    221-227). Returns the model as last read (None if not re-read).
    """
    attempt = 0
    model = None
    while True:
        try:
            client.request(
                "PUT", f"/_plugins/_ml/models/{model_id}", body={"description": description}
            )
            return model
        except OpenSearchError as exc:
            if exc.status != 409 or "deploying" not in exc.reason.lower():
                raise
            attempt += 1
            if not client.pause(attempt):
                raise SetupError(
                    f"model {model_id} was still deploying when time ran out; ML Commons "
                    "refuses updates until a deployment ends"
                ) from exc
            model = common.get_model(client, model_id)  # a poll also moves it on


def _delete_group(client: OpenSearchClient, group_id: str) -> None:
    response = client.request("DELETE", f"/_plugins/_ml/model_groups/{group_id}", allow=(404, 409))
    if response.status == 409:
        # Someone registered another version into our group: leave it to them.
        LOG.warning("model group %s still has models; leaving it", group_id)


def _remove(client: OpenSearchClient, model_id: str, group_id: str | None) -> None:
    """Undeploy (if needed), delete the model, then its group; absent is fine."""
    attempt = 0
    while True:
        model = common.get_model(client, model_id)
        if model is None:
            break
        group_id = group_id or model.get("model_group_id")
        if model.get("model_state") in common.UNDEPLOY_BEFORE_DELETE:
            common.undeploy(client, model_id)
        try:
            client.request("DELETE", f"/_plugins/_ml/models/{model_id}", allow=(404,))
            break
        except OpenSearchError as exc:
            # Still deploying when we undeployed: undeploy again until the deadline.
            if exc.status != 400 or "undeploy" not in exc.reason.lower():
                raise
            attempt += 1
            if not client.pause(attempt):
                raise
    if group_id:
        _delete_group(client, group_id)


def delete(props: Props, physical_id: str, ctx: Ctx) -> None:
    if not common.is_ml_id(physical_id):
        # Not one of ours (CloudFormation's request id after a Create that failed
        # before returning one): nothing to delete, and no call to make.
        LOG.warning("physical id %r is not a model id; nothing to delete", physical_id[:80])
        return
    client = ctx.setup_client()
    client.wait_until_available()
    group_id = None
    if common.get_model(client, physical_id) is None:
        # The model is gone; its group may not be (a delete that died halfway).
        try:
            group_id = _find_group(client, Spec.parse(props).name)
        except (SetupError, ValueError) as exc:
            LOG.warning("cannot derive the model group name: %s", exc)
    _remove(client, physical_id, group_id)


def poll(props: Props, physical_id: str, wait: dict[str, Any], ctx: Ctx) -> Outcome | None:
    common.require_ml_id(physical_id, "model physical id")
    client = ctx.setup_client()
    check = common.check_deployment(
        client, physical_id, wait.get("task_id"), deadline=float(wait["deadline"]), now=ctx.now()
    )
    if check.failure:
        if wait.get("cleanup_on_failure"):
            common.best_effort(lambda: _remove(client, physical_id, None))
        raise SetupError(check.failure)
    if not check.done:
        return None
    name = Spec.parse(props).name
    return Outcome(physical_id, {"ModelId": physical_id, "ModelName": name})

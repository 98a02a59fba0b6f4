"""Custom::MlAccessMapping: the security-plugin mappings the other resources need.

The only code that acts as the FGAC master user. It assumes the master role,
then:
* adds the setup role's ARN as a backend role of ``ml_full_access`` by JSON
  Patch (other entries of that shared mapping are never rewritten);
* creates a role of our own that may manage only this app's index pattern, and
  maps exactly the setup role to it;
* creates the search-client role ``<app>-<env>-search-client``, which may do
  what a search application does and nothing more (see ``CLIENT_*`` below),
  and maps exactly the domain stack's client IAM role to it. Without it every
  application (and the pipeline's smoke test) would have to act as the master.
Delete removes exactly those five things. Never ``all_access``, never a
wildcard backend role.

The physical id never changes: every property is updated in place, because a
replacement would create the new mapping and then let CloudFormation's cleanup
delete the old one, and both share the setup role's entry in ``ml_full_access``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .common import Ctx, Outcome, best_effort
from .opensearch_client import OpenSearchClient
from .properties import ROLE_ARN, PropertyError, Props

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = "Custom::MlAccessMapping"
ML_FULL_ACCESS = "ml_full_access"
SECURITY = "/_plugins/_security/api"
# Index management (create, mapping, settings, delete, monitor), plus what
# the re-embedding copy on an index replacement needs (semantic_index.py):
# _reindex is a cluster permission (security 3.7.0.0
# .../actionlevel/legacy/PrivilegesEvaluatorImpl.java:611-622), its scroll
# searches the source and its bulk writes the destination as the caller
# (.../legacy/IndexResolverReplacer.java:855-857). GET _tasks/<id> is
# cluster:monitor/task/get, which ml_full_access's cluster_monitor already grants.
# Writes stay open during the copy (catchup.py): its last round deletes from
# the new index what was deleted meanwhile (indices:data/write/delete, on our
# patterns only). Two grants the security plugin cannot scope, said plainly:
# ingest pipelines are cluster-wide objects (cluster:admin/ingest/pipeline/put
# and /delete, the names of security 3.7.0.0 config/roles.yml:87-88), used for
# the one pipeline ``<alias>-migration-stamp``; and cluster:admin/tasks/cancel
# (core CancelTasksAction.NAME, class name only) is checked as a cluster
# permission with no task or index scope (no task-level check in the plugin's
# evaluator: a search of security 3.7.0.0 for "tasks/cancel" finds none), used
# only on the copy's own _reindex task, so that an abandoned copy cannot
# recreate the index it was writing.
INDEX_ACTIONS = (
    "indices:admin/*",
    "indices:monitor/*",
    "indices:data/read/search*",
    "indices:data/write/index",
    "indices:data/write/delete",
    "indices:data/write/bulk*",
)
SETUP_CLUSTER_ACTIONS = (
    "indices:data/write/reindex",
    "indices:data/write/bulk",
    "cluster:admin/tasks/cancel",
    "cluster:admin/ingest/pipeline/put",
    "cluster:admin/ingest/pipeline/delete",
)
# The hybrid search pipeline (search_pipeline.py), granted only with the
# ManageSearchPipelines property: OpenSearch core's Put/Get/DeleteSearchPipelineAction
# names; ml_full_access has none of them. A property, not only code, so that a
# stack deployed before the pipeline existed gets an Update (and the grant)
# before CloudFormation creates the pipeline.
PIPELINE_ACTIONS = (
    "cluster:admin/search/pipeline/put",
    "cluster:admin/search/pipeline/get",
    "cluster:admin/search/pipeline/delete",
)
# The search client: each permission is here because a request a search
# application makes needs it (security plugin action names).
CLIENT_CLUSTER_ACTIONS = (
    # GET /_cluster/health: readiness checks (the smoke test's first check).
    "cluster:monitor/health",
    # Semantic-field ingest and neural queries run ML Commons predict under the
    # caller's identity (neural-search calls ML Commons through the node client
    # in the request's security context); also direct _predict calls.
    "cluster:admin/opensearch/ml/predict",
    # neural-search reads the model (asymmetric model config, content type);
    # the smoke test checks that the model is DEPLOYED.
    "cluster:admin/opensearch/ml/models/get",
    # _bulk is a cluster-level action in the security plugin (isClusterPerm);
    # each item is then checked as indices:data/write/index on its index.
    "indices:data/write/bulk",
)
CLIENT_INDEX_ACTIONS = (
    "indices:data/read/get",  # GET _doc
    "indices:data/read/search*",  # _search (neural, knn, match), _count
    "indices:data/write/index",  # PUT/POST _doc and bulk index items (semantic ingest)
    "indices:data/write/delete",  # DELETE _doc
    "indices:data/write/bulk*",  # bulk shard requests (indices:data/write/bulk[s])
    "indices:admin/refresh*",  # POST _refresh
)


@dataclass(frozen=True)
class Spec:
    master_role_arn: str
    setup_role_arn: str
    role_name: str
    index_patterns: tuple[str, ...]
    # None only in the OldResourceProperties of a resource created before the
    # search-client role existed (an Update must still be able to read them).
    client_role_arn: str | None = None
    client_role_name: str | None = None
    manage_search_pipelines: bool = False

    @classmethod
    def parse(cls, props: Props, *, require_client: bool = True) -> Spec:
        patterns = props.string_list(
            "IndexPatterns",
            pattern=r"[a-z0-9][a-z0-9_\-]{1,200}\*?",
            what="a list of index names or prefix patterns ending in '*' (never '*' alone)",
        )
        role_name = r"[a-z][a-z0-9_\-]{2,63}"
        role_what = "a security role name of lowercase letters, digits, '_' and '-'"
        with_client = require_client or props.has("ClientRoleArn") or props.has("ClientRoleName")
        spec = cls(
            master_role_arn=props.string("MasterRoleArn", pattern=ROLE_ARN, what="an IAM role ARN"),
            setup_role_arn=props.string("SetupRoleArn", pattern=ROLE_ARN, what="an IAM role ARN"),
            role_name=props.string("RoleName", pattern=role_name, what=role_what),
            index_patterns=tuple(patterns),
            client_role_arn=(
                props.string("ClientRoleArn", pattern=ROLE_ARN, what="an IAM role ARN")
                if with_client
                else None
            ),
            client_role_name=(
                props.string("ClientRoleName", pattern=role_name, what=role_what)
                if with_client
                else None
            ),
            manage_search_pipelines=props.boolean("ManageSearchPipelines", default=False),
        )
        if spec.client_role_name is not None and spec.client_role_name == spec.role_name:
            raise PropertyError(
                f"{RESOURCE_TYPE} property ClientRoleName: {spec.client_role_name!r}; expected a "
                "name different from RoleName (the setup role's security role)"
            )
        if spec.client_role_arn in (spec.master_role_arn, spec.setup_role_arn):
            raise PropertyError(
                f"{RESOURCE_TYPE} property ClientRoleArn: {spec.client_role_arn!r}; expected a "
                "role other than the master and setup roles"
            )
        return spec


def _get_mapping(client: OpenSearchClient, role: str) -> dict | None:
    response = client.request("GET", f"{SECURITY}/rolesmapping/{role}", allow=(404,))
    if response.status == 404 or not isinstance(response.body, dict):
        return None
    mapping = response.body.get(role)
    return mapping if isinstance(mapping, dict) else None


def add_backend_role(client: OpenSearchClient, role: str, backend_role: str) -> None:
    """Add one backend role to a shared mapping without rewriting anyone else's entries."""
    mapping = _get_mapping(client, role)
    if mapping is None:
        # No mapping yet: creating it overwrites nothing.
        client.request(
            "PUT", f"{SECURITY}/rolesmapping/{role}", body={"backend_roles": [backend_role]}
        )
        return
    current = mapping.get("backend_roles")
    if isinstance(current, list) and backend_role in current:
        return
    # The security plugin applies a PATCH to the mapping serialized without its
    # empty lists (security 3.7.0.0 AbstractApiAction.java:204-208,
    # DefaultObjectMapper.java:104-109; security issue #4393), so appending with
    # "/backend_roles/-" works only on a non-empty list. On [] (what our own Delete
    # leaves on ml_full_access) or a missing list (a mapping that lists only
    # users), set the whole array: there is nobody else's entry to overwrite.
    op = (
        {"op": "add", "path": "/backend_roles/-", "value": backend_role}
        if isinstance(current, list) and current
        else {"op": "add", "path": "/backend_roles", "value": [backend_role]}
    )
    client.request("PATCH", f"{SECURITY}/rolesmapping/{role}", body=[op], idempotent=False)


def remove_backend_role(client: OpenSearchClient, role: str, backend_role: str) -> None:
    """Remove our entry from a shared mapping, by position, leaving the others untouched."""
    mapping = _get_mapping(client, role)
    current = mapping.get("backend_roles") if mapping else None
    if not isinstance(current, list) or backend_role not in current:
        return
    index = current.index(backend_role)
    client.request(
        "PATCH",
        f"{SECURITY}/rolesmapping/{role}",
        body=[{"op": "remove", "path": f"/backend_roles/{index}"}],
        idempotent=False,
    )


def _put_own_role(client: OpenSearchClient, spec: Spec) -> None:
    client.request(
        "PUT",
        f"{SECURITY}/roles/{spec.role_name}",
        body={
            "description": "ML setup custom resources: manage this app's semantic index only",
            "cluster_permissions": list(SETUP_CLUSTER_ACTIONS)
            + (list(PIPELINE_ACTIONS) if spec.manage_search_pipelines else []),
            "index_permissions": [
                {
                    "index_patterns": list(spec.index_patterns),
                    "allowed_actions": list(INDEX_ACTIONS),
                }
            ],
        },
    )
    client.request(
        "PUT",
        f"{SECURITY}/rolesmapping/{spec.role_name}",
        body={"backend_roles": [spec.setup_role_arn]},
    )


def _put_client_role(client: OpenSearchClient, spec: Spec) -> None:
    """The search client's role and mapping: documents of our index pattern, ML predict."""
    # Spec.parse of a resource's current properties always reads both.
    assert spec.client_role_name and spec.client_role_arn
    client.request(
        "PUT",
        f"{SECURITY}/roles/{spec.client_role_name}",
        body={
            "description": (
                "Search client: read, write and search documents of this app's semantic index "
                "(neural queries and semantic ingest call ML predict as the caller)"
            ),
            "cluster_permissions": list(CLIENT_CLUSTER_ACTIONS),
            "index_permissions": [
                {
                    "index_patterns": list(spec.index_patterns),
                    "allowed_actions": list(CLIENT_INDEX_ACTIONS),
                }
            ],
        },
    )
    client.request(
        "PUT",
        f"{SECURITY}/rolesmapping/{spec.client_role_name}",
        body={"backend_roles": [spec.client_role_arn]},
    )


def _delete_own_role(client: OpenSearchClient, role_name: str) -> None:
    client.request("DELETE", f"{SECURITY}/rolesmapping/{role_name}", allow=(404,))
    client.request("DELETE", f"{SECURITY}/roles/{role_name}", allow=(404,))


def _apply(client: OpenSearchClient, spec: Spec) -> None:
    client.wait_until_available()
    add_backend_role(client, ML_FULL_ACCESS, spec.setup_role_arn)
    _put_own_role(client, spec)
    _put_client_role(client, spec)


def _outcome(physical_id: str, spec: Spec) -> Outcome:
    data = {"RoleName": spec.role_name}
    if spec.client_role_name:
        data["ClientRoleName"] = spec.client_role_name
    return Outcome(physical_id, data)


def create(props: Props, ctx: Ctx) -> Outcome:
    spec = Spec.parse(props)
    client = ctx.master_client(spec.master_role_arn)
    try:
        _apply(client, spec)
    except Exception:
        # A failed Create gets no Delete from the Provider framework: undo here.
        best_effort(lambda: _remove(client, spec))
        raise
    return _outcome(f"ml-access-mapping:{spec.role_name}", spec)


def update(props: Props, old_props: Props, physical_id: str, ctx: Ctx) -> Outcome:
    spec = Spec.parse(props)
    old = Spec.parse(old_props, require_client=False)
    client = ctx.master_client(spec.master_role_arn)
    _apply(client, spec)
    if old.setup_role_arn != spec.setup_role_arn:
        remove_backend_role(client, ML_FULL_ACCESS, old.setup_role_arn)
    if old.role_name != spec.role_name:
        _delete_own_role(client, old.role_name)
    if old.client_role_name is not None and old.client_role_name != spec.client_role_name:
        _delete_own_role(client, old.client_role_name)
    return _outcome(physical_id, spec)


def _remove(client: OpenSearchClient, spec: Spec) -> None:
    remove_backend_role(client, ML_FULL_ACCESS, spec.setup_role_arn)
    _delete_own_role(client, spec.role_name)
    if spec.client_role_name:
        _delete_own_role(client, spec.client_role_name)


def delete(props: Props, physical_id: str, ctx: Ctx) -> None:
    spec = Spec.parse(props, require_client=False)
    client = ctx.master_client(spec.master_role_arn)
    client.wait_until_available()
    _remove(client, spec)

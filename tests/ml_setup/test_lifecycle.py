"""Create -> Update -> Delete of the four custom resources against the emulated domain.

Every test drives the real ``on_event``/``is_complete`` with CloudFormation-
shaped events (string properties, OldResourceProperties, PhysicalResourceId)
and then inspects what the domain holds. The property -> behaviour table in
docs/ml-setup.md lists these tests by name.
"""

from __future__ import annotations

import json

import pytest

from tests.ml_setup.cfn import Provider
from tests.ml_setup.conftest import (
    CLIENT,
    CONNECTOR_ROLE,
    MASTER,
    OTHER_ML_USER,
    SETUP,
    Stack,
)
from tests.ml_setup.http import signed_request
from tests.support.domain_fixtures import e5_model_config
from tests.support.opensearch_emulator import OpenSearchEmulator

CONNECTOR = "Custom::MlConnector"
MODEL = "Custom::MlModel"
INDEX = "Custom::SemanticIndex"
MAPPING = "Custom::MlAccessMapping"


def record_alias_requests(emulator: OpenSearchEmulator) -> list[dict]:
    """The bodies of ``POST /_aliases`` requests from now on (the emulator still serves them)."""
    seen: list[dict] = []
    serve = emulator._aliases_update

    def recording(request):  # type: ignore[no-untyped-def]
        seen.append(json.loads(json.dumps(request.body)))
        return serve(request)

    emulator._aliases_update = recording  # type: ignore[method-assign]
    return seen


def created(stack: Stack) -> None:
    results = stack.create()
    failures = {k: r.reason for k, r in results.items() if r.status != "SUCCESS"}
    assert not failures, failures
    assert len(results) == 4


def assert_nothing_of_ours_left(emu: OpenSearchEmulator) -> None:
    assert emu.connectors == {}
    assert emu.models == {}
    assert emu.model_groups == {}
    assert not [i for i in emu.indices if i.startswith("documents-")]
    assert "e5search-dev-ml-setup" not in emu.roles
    assert "e5search-dev-ml-setup" not in emu.role_mappings
    assert "e5search-dev-search-client" not in emu.roles
    assert "e5search-dev-search-client" not in emu.role_mappings
    assert "documents" not in emu.aliases
    assert SETUP.arn not in emu.role_mappings.get("ml_full_access", {}).get("backend_roles", [])


def test_create_builds_the_connector_model_and_index_as_designed(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    ((connector_id, connector),) = emulator.connectors.items()
    assert stack.data[CONNECTOR] == {"ConnectorId": connector_id}
    # An IAM role, never keys; no content_type default in parameters.
    assert connector["credential"] == {"roleArn": CONNECTOR_ROLE}
    assert connector["parameters"] == {"region": "us-east-1", "service_name": "sagemaker"}
    assert connector["protocol"] == "aws_sigv4"
    (action,) = connector["actions"]
    assert action["url"] == (
        "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/e5search-dev-e5/invocations"
    )
    assert action["request_body"] == (
        '{ "texts": ${parameters.texts}, "content_type": "${parameters.content_type}" }'
    )
    # As ML Commons stores it: every field, the ones we do not set at their defaults.
    assert connector["client_config"] == {
        "max_connection": 9,
        "connection_timeout": 10,
        "read_timeout": 70,
        "max_retry_times": 5,
        "retry_backoff_millis": 200,
        "retry_timeout_seconds": 30,
        "retry_backoff_policy": "exponential_full_jitter",
        "skip_ssl_verification": False,
    }

    ((model_id, model),) = emulator.models.items()
    assert stack.data[MODEL]["ModelId"] == model_id
    assert model["function_name"] == "remote"
    assert model["connector_id"] == connector_id
    assert model["model_state"] == "DEPLOYED"
    # Real JSON types although CloudFormation delivered strings.
    assert model["model_config"] == e5_model_config()
    (group,) = emulator.model_groups.values()
    assert group["name"] == model["name"] == stack.data[MODEL]["ModelName"]

    index_name = stack.data[INDEX]["IndexName"]
    assert index_name.startswith("documents-")
    assert stack.data[INDEX]["IndexAlias"] == "documents"
    assert emulator.aliases == {"documents": {index_name: {}}}
    index = emulator.indices[index_name]
    assert index.settings["index.knn"] == "true"
    assert index.settings["index.number_of_shards"] == "1"
    assert index.settings["index.number_of_replicas"] == "0"
    assert index.mappings["properties"]["passage_text"] == {
        "type": "semantic",
        "model_id": model_id,
    }
    embedding = index.mappings["properties"]["passage_text_semantic_info"]["properties"][
        "embedding"
    ]
    assert embedding["dimension"] == 384
    assert embedding["method"]["space_type"] == "cosinesimil"


def test_create_maps_only_the_setup_role_and_only_through_the_master(
    stack: Stack, emulator: OpenSearchEmulator, assumed: list[tuple[str, str]]
) -> None:
    emulator.role_mappings["ml_full_access"] = {"backend_roles": [OTHER_ML_USER]}
    created(stack)
    # The shared mapping gained exactly our entry; the existing one is untouched.
    assert emulator.role_mappings["ml_full_access"]["backend_roles"] == [OTHER_ML_USER, SETUP.arn]
    role = emulator.roles["e5search-dev-ml-setup"]
    # Index management, plus the re-embedding copy's _reindex (test_migration.py).
    # ... and the hybrid search pipeline (test_search_pipeline.py).
    # ... the migration's task cancel and stamping pipeline (test_migration.py).
    assert role["cluster_permissions"] == [
        "indices:data/write/reindex",
        "indices:data/write/bulk",
        "cluster:admin/tasks/cancel",
        "cluster:admin/ingest/pipeline/put",
        "cluster:admin/ingest/pipeline/delete",
        "cluster:admin/search/pipeline/put",
        "cluster:admin/search/pipeline/get",
        "cluster:admin/search/pipeline/delete",
    ]
    assert role["index_permissions"] == [
        {
            "index_patterns": ["documents-*", "documents"],
            "allowed_actions": [
                "indices:admin/*",
                "indices:monitor/*",
                "indices:data/read/search*",
                "indices:data/write/index",
                "indices:data/write/delete",
                "indices:data/write/bulk*",
            ],
        }
    ]
    assert emulator.role_mappings["e5search-dev-ml-setup"] == {"backend_roles": [SETUP.arn]}
    # The search client: exactly these permissions, mapped to exactly the client role.
    client = emulator.roles["e5search-dev-search-client"]
    assert client["cluster_permissions"] == [
        "cluster:monitor/health",
        "cluster:admin/opensearch/ml/predict",
        "cluster:admin/opensearch/ml/models/get",
        "indices:data/write/bulk",
    ]
    assert client["index_permissions"] == [
        {
            "index_patterns": ["documents-*", "documents"],
            "allowed_actions": [
                "indices:data/read/get",
                "indices:data/read/search*",
                "indices:data/write/index",
                "indices:data/write/delete",
                "indices:data/write/bulk*",
                "indices:admin/refresh*",
            ],
        }
    ]
    assert emulator.role_mappings["e5search-dev-search-client"] == {"backend_roles": [CLIENT.arn]}
    assert {r for r, m in emulator.role_mappings.items() if CLIENT.arn in m["backend_roles"]} == {
        "e5search-dev-search-client"
    }
    assert emulator.role_mappings["all_access"]["backend_roles"] == []
    for mapping in emulator.role_mappings.values():
        assert not any("*" in b for b in mapping.get("backend_roles", []))
    # The master identity is assumed once per access-mapping call and used for
    # the security API (and the availability check) only.
    assert {arn for arn, _ in assumed} == {MASTER.arn}
    master_paths = {path for _, _, path, _ in emulator.calls(MASTER.arn)}
    assert all(
        p.startswith("/_plugins/_security/") or p == "/_cluster/health" for p in master_paths
    )
    assert not [c for c in emulator.calls(SETUP.arn) if c[2].startswith("/_plugins/_security/")]


def test_the_deployed_stack_ingests_and_answers_a_neural_query(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    """What the smoke test will check on AWS: asymmetric embedding end to end."""
    created(stack)
    model_id = stack.data[MODEL]["ModelId"]
    status, body = signed_request(
        emulator,
        MASTER,
        "POST",
        f"/_plugins/_ml/models/{model_id}/_predict",
        {"parameters": {"texts": ["What is OpenSearch?"], "content_type": "QUERY"}},
    )
    assert status == 200
    (query,) = body["inference_results"][0]["output"][0]["dataAsMap"]["response"]
    (passage,) = emulator.embed(model_id, ["What is OpenSearch?"], "passage")
    assert len(query) == 384 and query != passage  # the prefixes make the two roles differ
    index = stack.data[INDEX]["IndexName"]
    state = emulator.indices[index]
    for doc_id, text in [
        ("1", "OpenSearch is a community-driven, open-source search and analytics suite."),
        ("2", "Central Park is a large public park in New York City."),
    ]:
        status, _ = signed_request(
            emulator, SETUP, "PUT", f"/other-{index}/_doc/{doc_id}", {"passage_text": text}
        )
        assert status == 403  # the setup role writes (for _reindex) only the app's indexes
        status, _ = signed_request(
            emulator, MASTER, "PUT", f"/{index}/_doc/{doc_id}", {"passage_text": text}
        )
        assert status == 201
    assert "passage_text_semantic_info" in state.docs["1"]
    status, body = signed_request(
        emulator,
        MASTER,
        "POST",
        f"/{index}/_search",
        {"query": {"neural": {"passage_text": {"query_text": "What is OpenSearch?"}}}},
    )
    assert status == 200
    assert body["hits"]["hits"][0]["_id"] == "1"


def test_delete_removes_exactly_what_was_created(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    emulator.role_mappings["ml_full_access"] = {"backend_roles": [OTHER_ML_USER, "other"]}
    created(stack)
    status, _ = signed_request(
        emulator, MASTER, "PUT", "/unrelated", {"settings": {"index": {"number_of_shards": 1}}}
    )
    assert status == 200
    results = stack.delete()
    assert [r.status for r in results.values()] == ["SUCCESS"] * 4
    assert_nothing_of_ours_left(emulator)
    assert emulator.role_mappings["ml_full_access"]["backend_roles"] == [OTHER_ML_USER, "other"]
    assert "unrelated" in emulator.indices


def test_delete_while_the_model_is_deployed_undeploys_first(
    provider: Provider, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    model_id = stack.physical[MODEL]
    assert emulator.models[model_id]["model_state"] == "DEPLOYED"
    # Delete only the model resource (e.g. CloudFormation's cleanup after a replacement).
    result = provider.send("Delete", MODEL, stack.applied[MODEL], physical_id=model_id)
    assert result.status == "SUCCESS", result.reason
    assert model_id not in emulator.models
    assert emulator.model_groups == {}
    undeploys = [c for c in emulator.calls() if c[2].endswith(f"{model_id}/_undeploy")]
    assert undeploys, "the model must be undeployed before it is deleted"


def test_delete_when_everything_is_already_gone_succeeds(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    # Someone removed the index (and with it its alias), model, group and connector by hand.
    emulator.indices.clear()
    emulator.aliases.clear()
    emulator.models.clear()
    emulator.model_groups.clear()
    emulator.connectors.clear()
    results = stack.delete()
    assert [r.status for r in results.values()] == ["SUCCESS"] * 4, results
    assert_nothing_of_ours_left(emulator)


def test_delete_access_mapping_when_its_entries_are_gone_succeeds(
    provider: Provider, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    emulator.role_mappings.pop("e5search-dev-ml-setup")
    emulator.roles.pop("e5search-dev-ml-setup")
    emulator.role_mappings.pop("ml_full_access")
    result = provider.send(
        "Delete", MAPPING, stack.applied[MAPPING], physical_id=stack.physical[MAPPING]
    )
    assert result.status == "SUCCESS", result.reason


def test_retain_on_delete_keeps_the_index_and_a_new_stack_adopts_it(
    provider: Provider, emulator: OpenSearchEmulator
) -> None:
    first = Stack(provider, emulator.endpoint)
    first.props[INDEX]["RetainOnDelete"] = True
    created(first)
    index = first.data[INDEX]["IndexName"]
    emulator.indices[index].docs["kept"] = {"passage_text": "survives a destroy"}
    assert [r.status for r in first.delete().values()] == ["SUCCESS"] * 4
    assert index in emulator.indices
    assert emulator.aliases == {"documents": {index: {}}}, "a retained index keeps its alias"
    assert emulator.models == {}

    second = Stack(provider, emulator.endpoint)
    second.props[INDEX]["RetainOnDelete"] = True
    created(second)
    assert second.data[INDEX]["IndexName"] == index
    assert "kept" in emulator.indices[index].docs
    mapping = emulator.indices[index].mappings["properties"]["passage_text"]
    assert mapping["model_id"] == second.data[MODEL]["ModelId"]


# ----------------------------------------------------------------------------- updates


def test_update_connector_endpoint_in_place_redeploys_the_model(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    ids = dict(stack.physical)
    stack.props[CONNECTOR]["EndpointName"] = "e5search-dev-e5-v2"
    results = stack.update()
    assert list(results) == [CONNECTOR], "only the connector changes"
    assert results[CONNECTOR].status == "SUCCESS", results[CONNECTOR].reason
    assert results[CONNECTOR].polls >= 2, "is_complete waited for the redeployment"
    assert stack.physical == ids
    (connector,) = emulator.connectors.values()
    assert connector["actions"][0]["url"].endswith("/endpoints/e5search-dev-e5-v2/invocations")
    assert emulator.models[ids[MODEL]]["model_state"] == "DEPLOYED"
    methods = [
        (c[1], c[2].rsplit("/", 1)[-1]) for c in emulator.calls() if "/_plugins/_ml/" in c[2]
    ]
    undeploy = methods.index(("POST", "_undeploy"))
    put = methods.index(("PUT", ids[CONNECTOR]))
    redeploy = max(i for i, m in enumerate(methods) if m == ("POST", "_deploy"))
    assert undeploy < put < redeploy


def test_update_connector_client_config_in_place(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    ids = dict(stack.physical)
    stack.props[CONNECTOR]["MaxConnections"] = 24
    stack.props[CONNECTOR]["MaxRetryTimes"] = 8
    results = stack.update()
    assert results[CONNECTOR].status == "SUCCESS", results[CONNECTOR].reason
    assert stack.physical == ids
    (connector,) = emulator.connectors.values()
    assert connector["client_config"]["max_connection"] == 24
    assert connector["client_config"]["max_retry_times"] == 8


def test_update_model_config_registers_a_new_model_and_the_index_follows_in_place(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    old_model, index = stack.physical[MODEL], stack.physical[INDEX]
    emulator.indices[index].docs["kept"] = {"passage_text": "old document"}
    stack.props[MODEL]["QueryPrefix"] = "query:  "
    results = stack.update()
    assert {k: r.status for k, r in results.items()} == {
        MODEL: "SUCCESS",
        INDEX: "SUCCESS",
        f"cleanup {MODEL}": "SUCCESS",
    }
    new_model = stack.physical[MODEL]
    assert new_model != old_model
    assert stack.physical[INDEX] == index, "same dimension and space type: same index"
    assert emulator.indices[index].mappings["properties"]["passage_text"]["model_id"] == new_model
    assert "kept" in emulator.indices[index].docs
    assert set(emulator.models) == {new_model}
    assert len(emulator.model_groups) == 1
    assert (
        emulator.models[new_model]["model_config"]["additional_config"]["query_prefix"]
        == "query:  "
    )


def test_update_model_description_in_place(stack: Stack, emulator: OpenSearchEmulator) -> None:
    created(stack)
    ids = dict(stack.physical)
    stack.props[MODEL]["Description"] = "new words"
    results = stack.update()
    assert list(results) == [MODEL] and results[MODEL].status == "SUCCESS"
    assert stack.physical == ids
    assert emulator.models[ids[MODEL]]["description"] == "new words"


def test_update_dimension_replaces_model_and_index(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    old_model, old_index = stack.physical[MODEL], stack.physical[INDEX]
    alias_requests = record_alias_requests(emulator)
    for kind in (MODEL, INDEX):
        stack.props[kind]["EmbeddingDimension"] = 768
    results = stack.update()
    assert all(r.status == "SUCCESS" for r in results.values()), results
    assert stack.physical[MODEL] != old_model
    assert stack.physical[INDEX] != old_index
    assert old_index not in emulator.indices
    # One atomic move (remove + add in the same request); the cleanup delete of
    # the old index left the alias on the new one.
    assert alias_requests == [
        {
            "actions": [
                {"remove": {"index": old_index, "alias": "documents"}},
                {"add": {"index": stack.physical[INDEX], "alias": "documents"}},
            ]
        }
    ]
    assert emulator.aliases == {"documents": {stack.physical[INDEX]: {}}}
    assert set(emulator.models) == {stack.physical[MODEL]}
    new = emulator.indices[stack.physical[INDEX]]
    assert (
        new.mappings["properties"]["passage_text_semantic_info"]["properties"]["embedding"][
            "dimension"
        ]
        == 768
    )


def test_update_space_type_replaces_the_index_and_keeps_a_retained_old_one(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    stack.props[INDEX]["RetainOnDelete"] = True
    created(stack)
    old_index = stack.physical[INDEX]
    for kind in (MODEL, INDEX):
        stack.props[kind]["SpaceType"] = "innerproduct"
    results = stack.update()
    assert all(r.status == "SUCCESS" for r in results.values()), results
    assert stack.physical[INDEX] != old_index
    assert old_index in emulator.indices, "the old index was retained"
    assert emulator.aliases == {"documents": {stack.physical[INDEX]: {}}}, "the alias moved"


def test_update_replicas_in_place(stack: Stack, emulator: OpenSearchEmulator) -> None:
    created(stack)
    index = stack.physical[INDEX]
    stack.props[INDEX]["NumberOfReplicas"] = 2
    results = stack.update()
    assert results[INDEX].status == "SUCCESS" and stack.physical[INDEX] == index
    assert emulator.indices[index].settings["index.number_of_replicas"] == "2"


def test_update_shards_replaces_the_index(stack: Stack, emulator: OpenSearchEmulator) -> None:
    created(stack)
    index = stack.physical[INDEX]
    stack.props[INDEX]["NumberOfShards"] = 3
    results = stack.update()
    assert results[INDEX].status == "SUCCESS"
    assert stack.physical[INDEX] != index and index not in emulator.indices
    assert emulator.indices[stack.physical[INDEX]].settings["index.number_of_shards"] == "3"


def test_update_shards_moves_the_alias_off_a_retained_old_index(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    """The retained old index keeps its documents; the alias now serves the new one."""
    stack.props[INDEX]["RetainOnDelete"] = True
    created(stack)
    old_index = stack.physical[INDEX]
    emulator.indices[old_index].docs["old"] = {"passage_text": "from before"}
    stack.props[INDEX]["NumberOfShards"] = 2
    assert stack.update()[INDEX].status == "SUCCESS"
    new_index = stack.physical[INDEX]
    assert emulator.aliases == {"documents": {new_index: {}}}
    assert "old" in emulator.indices[old_index].docs
    status, body = signed_request(emulator, MASTER, "GET", "/documents")
    assert status == 200 and list(body) == [new_index]


def test_create_fails_cleanly_when_the_alias_name_is_taken_by_an_index(
    provider: Provider, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    status, _ = signed_request(emulator, MASTER, "PUT", "/documents", {})
    assert status == 200
    results = stack.create()
    assert results[INDEX].status == "FAILED"
    assert "invalid_alias_name_exception" in results[INDEX].reason
    # The Provider framework sends no Delete after a failed Create: nothing may be left.
    assert [i for i in emulator.indices if i.startswith("documents-")] == []
    assert "documents" in emulator.indices and emulator.aliases == {}


def test_a_recreated_alias_is_repaired_by_an_update_in_place(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    index = stack.physical[INDEX]
    emulator.aliases.clear()  # someone removed the alias by hand
    stack.props[INDEX]["NumberOfReplicas"] = 1
    assert stack.update()[INDEX].status == "SUCCESS" and stack.physical[INDEX] == index
    assert emulator.aliases == {"documents": {index: {}}}


def test_update_retain_on_delete_changes_nothing_in_the_domain(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    before = len(emulator.calls())
    stack.props[INDEX]["RetainOnDelete"] = True
    results = stack.update()
    assert results[INDEX].status == "SUCCESS"
    writes = [c for c in emulator.calls()[before:] if c[1] in ("PUT", "DELETE", "PATCH")]
    assert writes == []


def test_update_access_mapping_patterns_and_role_name_in_place(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    physical = stack.physical[MAPPING]
    stack.props[MAPPING]["IndexPatterns"] = ["documents-*", "archive-*"]
    stack.props[MAPPING]["RoleName"] = "e5search-dev-ml-setup-v2"
    results = stack.update()
    assert results[MAPPING].status == "SUCCESS" and stack.physical[MAPPING] == physical
    assert "e5search-dev-ml-setup" not in emulator.roles
    assert "e5search-dev-ml-setup" not in emulator.role_mappings
    role = emulator.roles["e5search-dev-ml-setup-v2"]
    assert role["index_permissions"][0]["index_patterns"] == ["documents-*", "archive-*"]
    assert emulator.role_mappings["e5search-dev-ml-setup-v2"] == {"backend_roles": [SETUP.arn]}
    assert emulator.role_mappings["ml_full_access"]["backend_roles"] == [SETUP.arn]


def test_update_client_role_name_and_arn_in_place_removes_the_old_role(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    new_arn = CLIENT.arn.replace("ClientRole1234", "ClientRole5678")
    stack.props[MAPPING]["ClientRoleName"] = "e5search-dev-search-client-v2"
    stack.props[MAPPING]["ClientRoleArn"] = new_arn
    results = stack.update()
    assert results[MAPPING].status == "SUCCESS", results[MAPPING].reason
    assert "e5search-dev-search-client" not in emulator.roles
    assert "e5search-dev-search-client" not in emulator.role_mappings
    assert emulator.role_mappings["e5search-dev-search-client-v2"] == {"backend_roles": [new_arn]}
    assert CLIENT.arn not in json.dumps(emulator.role_mappings)


def test_update_of_a_mapping_created_before_the_client_role_adds_it(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    """Stacks deployed before the search client existed: OldResourceProperties lack it."""
    created(stack)
    old = dict(stack.applied[MAPPING])
    for key in ("ClientRoleArn", "ClientRoleName"):
        old.pop(key)
    old["IndexPatterns"] = ["documents-*"]
    stack.applied[MAPPING] = old
    emulator.roles.pop("e5search-dev-search-client")
    emulator.role_mappings.pop("e5search-dev-search-client")
    results = stack.update()
    assert results[MAPPING].status == "SUCCESS", results[MAPPING].reason
    assert emulator.role_mappings["e5search-dev-search-client"] == {"backend_roles": [CLIENT.arn]}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ClientRoleArn", MASTER.arn, "expected a role other than the master and setup roles"),
        ("ClientRoleName", "e5search-dev-ml-setup", "expected a name different from RoleName"),
        ("ClientRoleArn", None, "ClientRoleArn: missing"),
    ],
)
def test_client_role_properties_are_validated(
    key: str, value: object, message: str, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    if value is None:
        stack.props[MAPPING].pop(key)
    else:
        stack.props[MAPPING][key] = value
    results = stack.create()
    assert results[MAPPING].status == "FAILED"
    assert message in results[MAPPING].reason
    assert "e5search-dev-search-client" not in emulator.roles
    assert emulator.role_mappings["all_access"]["backend_roles"] == []


@pytest.mark.parametrize("value", ["true", "True", True])
def test_is_asymmetric_reaches_the_domain_as_a_json_boolean(
    value: object, provider: Provider, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    stack.props[MODEL]["IsAsymmetric"] = value
    created(stack)
    (model,) = emulator.models.values()
    assert model["model_config"]["additional_config"]["is_asymmetric"] is True
    assert json.dumps(model["model_config"]).count('"is_asymmetric": true') == 1

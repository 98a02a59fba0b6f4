"""ML Commons rules the first real deploy meets: model access control, auto-deploy, updates.

Each emulator rule is cited in tests/support/opensearch_emulator.py (ml-commons
3.7.0.0 path:line); the tests here show our resources survive them, and the
emulator-rule tests show the emulator enforces them (so the first group would
fail on the code before the fix).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.ml_setup.conftest import CLIENT, MASTER, SETUP, Stack
from tests.ml_setup.http import signed_request
from tests.ml_setup.test_lifecycle import assert_nothing_of_ours_left, created
from tests.support.domain_fixtures import CONNECTOR_ROLE, e5_model_config
from tests.support.opensearch_emulator import OpenSearchEmulator

CONNECTOR = "Custom::MlConnector"
MODEL = "Custom::MlModel"
INDEX = "Custom::SemanticIndex"
MAPPING = "Custom::MlAccessMapping"
ACCESS_CONTROL = "plugins.ml_commons.model_access_control_enabled"
AUTO_DEPLOY = "plugins.ml_commons.model_auto_deploy.enable"
PASSAGE = "OpenSearch is a community-driven, open-source search and analytics suite."
NEURAL = {"query": {"neural": {"passage_text": {"query_text": "What is OpenSearch?"}}}}
NO_PRIVILEGE = "User doesn't have privilege to perform this operation on this model"


def client_works(emulator: OpenSearchEmulator, doc: str = "1") -> None:
    """The search-client role ingests into the semantic field and runs a neural query."""
    status, body = signed_request(
        emulator, CLIENT, "PUT", f"/documents/_doc/{doc}", {"passage_text": PASSAGE}
    )
    assert status == 201, body
    status, body = signed_request(emulator, CLIENT, "POST", "/documents/_search", NEURAL)
    assert status == 200, body
    assert doc in [h["_id"] for h in body["hits"]["hits"]]


def live_query_after_undeploy(emulator: OpenSearchEmulator, times: int) -> list[int]:
    """After each of the first ``times`` undeploys, a client's neural query (auto-deploys)."""
    statuses: list[int] = []

    def hook(method: str, path: str, status: int) -> None:
        if path.endswith("/_undeploy") and status == 200 and len(statuses) < times:
            statuses.append(
                signed_request(emulator, CLIENT, "POST", "/documents/_search", NEURAL)[0]
            )

    emulator.after_request.append(hook)
    return statuses


# ----------------------------------------------------------------------------- model access


def test_with_model_access_control_on_the_client_role_ingests_and_queries(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    emulator.ml_settings[ACCESS_CONTROL] = True
    created(stack)
    ((_, group),) = emulator.model_groups.items()
    assert group["access"] == "public" and group["owner"] == SETUP.arn
    client_works(emulator)


def test_with_model_access_control_off_the_group_is_registered_again_without_a_mode(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    registers = [c[3] for c in emulator.calls() if c[2] == "/_plugins/_ml/model_groups/_register"]
    assert registers == [400, 200], "access_mode refused by the domain, then registered without"
    ((_, group),) = emulator.model_groups.items()
    assert group["access"] == "public" and "owner" not in group
    client_works(emulator)


def test_emulator_a_private_group_refuses_the_client_but_not_its_owner_or_an_admin(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    emulator.ml_settings[ACCESS_CONTROL] = True
    created(stack)
    ((_, group),) = emulator.model_groups.items()
    group["access"] = "private"  # what a group registered without access_mode gets
    model_id = stack.data[MODEL]["ModelId"]
    predict = {"parameters": {"texts": ["q"], "content_type": "query"}}
    path = f"/_plugins/_ml/models/{model_id}/_predict"
    status, body = signed_request(emulator, CLIENT, "POST", path, predict)
    assert status == 403 and body["error"]["reason"] == NO_PRIVILEGE
    status, body = signed_request(emulator, CLIENT, "POST", "/documents/_search", NEURAL)
    assert status == 403 and NO_PRIVILEGE in str(body)
    status, body = signed_request(
        emulator, CLIENT, "PUT", "/documents/_doc/1", {"passage_text": "x"}
    )
    assert status == 403 and NO_PRIVILEGE in str(body)
    assert signed_request(emulator, SETUP, "POST", path, predict)[0] == 200  # the owner
    assert signed_request(emulator, MASTER, "POST", path, predict)[0] == 200  # all_access


def test_emulator_group_access_parameters_follow_ml_commons(
    emulator: OpenSearchEmulator, stack: Stack
) -> None:
    created(stack)  # maps the setup role to ml_full_access
    path = "/_plugins/_ml/model_groups/_register"

    def register(name: str, **extra: object) -> tuple[int, object]:
        return signed_request(emulator, SETUP, "POST", path, {"name": name, **extra})

    status, body = register("g-off", access_mode="public")
    assert status == 400 and "model access control is disabled on your cluster" in str(body)
    emulator.ml_settings[ACCESS_CONTROL] = True
    status, body = register("g1")
    assert status == 200 and emulator.model_groups[body["model_group_id"]]["access"] == "private"
    # A non-admin cannot restrict a group to a backend role it does not have (the client's).
    status, body = register("g2", access_mode="restricted", backend_roles=[CLIENT.arn])
    assert status == 400 and "You don't have the backend roles specified." in str(body)
    status, body = register("g3", access_mode="restricted", add_all_backend_roles=True)
    assert status == 200
    assert emulator.model_groups[body["model_group_id"]]["backend_roles"] == [SETUP.arn]
    status, body = register("g4", access_mode="public", backend_roles=[SETUP.arn])
    assert status == 400 and "only for a model group with the restricted access mode" in str(body)


# ----------------------------------------------------------------------------- auto-deploy


def test_emulator_a_query_on_an_undeployed_model_deploys_it_unless_auto_deploy_is_off(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    model_id = stack.data[MODEL]["ModelId"]
    path = f"/_plugins/_ml/models/{model_id}/_undeploy"
    assert signed_request(emulator, SETUP, "POST", path)[0] == 200
    assert signed_request(emulator, CLIENT, "POST", "/documents/_search", NEURAL)[0] == 200
    assert emulator.models[model_id]["model_state"] == "DEPLOYED"
    assert emulator.auto_deploys == [model_id]
    emulator.ml_settings[AUTO_DEPLOY] = False
    assert signed_request(emulator, SETUP, "POST", path)[0] == 200
    status, body = signed_request(emulator, CLIENT, "POST", "/documents/_search", NEURAL)
    assert status == 400 and "Model not ready yet. Please deploy the model first." in str(body)


def test_emulator_a_connector_update_is_refused_while_a_model_is_still_deploying(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    model_id, connector_id = stack.data[MODEL]["ModelId"], stack.data[CONNECTOR]["ConnectorId"]
    ml = "/_plugins/_ml/models/" + model_id
    assert signed_request(emulator, SETUP, "POST", ml + "/_undeploy")[0] == 200
    assert signed_request(emulator, SETUP, "POST", ml + "/_deploy")[0] == 200
    # Loaded on the node, though the model index still says DEPLOYING.
    assert emulator.models[model_id]["model_state"] == "DEPLOYING"
    status, body = signed_request(
        emulator, SETUP, "PUT", f"/_plugins/_ml/connectors/{connector_id}", {"description": "x"}
    )
    assert status == 400 and "please undeploy the models first" in str(body)


def test_a_connector_update_survives_a_query_that_redeploys_the_model_mid_update(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    ids = dict(stack.physical)
    queries = live_query_after_undeploy(emulator, times=2)
    stack.props[CONNECTOR]["EndpointName"] = "e5search-dev-e5-v2"
    results = stack.update()
    assert results[CONNECTOR].status == "SUCCESS", results[CONNECTOR].reason
    assert queries == [200, 200] and emulator.auto_deploys == [ids[MODEL], ids[MODEL]]
    assert stack.physical == ids
    (connector,) = emulator.connectors.values()
    assert connector["actions"][0]["url"].endswith("/endpoints/e5search-dev-e5-v2/invocations")
    assert emulator.models[ids[MODEL]]["model_state"] == "DEPLOYED"
    refused = [c for c in emulator.calls() if c[1] == "PUT" and c[2].endswith(ids[CONNECTOR])]
    assert [c[3] for c in refused] == [400, 400, 200]


def test_a_connector_update_under_unrelenting_traffic_fails_in_bounded_time_and_redeploys(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    model_id = stack.data[MODEL]["ModelId"]
    live_query_after_undeploy(emulator, times=1000)
    stack.props[CONNECTOR]["EndpointName"] = "e5search-dev-e5-v2"
    result = stack.update()[CONNECTOR]
    assert result.status == "FAILED"
    assert "were deployed again (ML Commons auto-deploy on live traffic)" in result.reason
    assert model_id in result.reason and "\n" not in result.reason
    puts = [c for c in emulator.calls() if c[1] == "PUT" and "/connectors/" in c[2]]
    assert len(puts) == 5
    (connector,) = emulator.connectors.values()
    assert connector["actions"][0]["url"].endswith("/endpoints/e5search-dev-e5/invocations")
    assert emulator.models[model_id]["model_state"] in ("DEPLOYED", "DEPLOYING")


# ----------------------------------------------------------------------------- acceptance

UPDATES: list[tuple[str, Callable[[Stack], None]]] = [
    ("connector in place", lambda s: s.props[CONNECTOR].update(EndpointName="e5search-dev-e5-v2")),
    ("connector client config", lambda s: s.props[CONNECTOR].update(MaxConnections=24)),
    ("model description in place", lambda s: s.props[MODEL].update(Description="new words")),
    ("model config: new model", lambda s: s.props[MODEL].update(QueryPrefix="query:  ")),
    ("index replicas in place", lambda s: s.props[INDEX].update(NumberOfReplicas=2)),
    ("index shards: new index", lambda s: s.props[INDEX].update(NumberOfShards=2)),
    (
        "mapping patterns in place",
        lambda s: s.props[MAPPING].update(IndexPatterns=["documents-*", "documents", "extra-*"]),
    ),
]


@pytest.mark.parametrize("access_control", [True, False])
def test_the_whole_lifecycle_under_every_rule_with_live_queries(
    access_control: bool, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    """create -> every class of update -> delete -> create again, the client querying throughout."""
    emulator.ml_settings[ACCESS_CONTROL] = access_control
    created(stack)
    client_works(emulator, "0")
    for n, (what, change) in enumerate(UPDATES, start=1):
        # A neural query lands between our undeploy and the connector PUT (and redeploys).
        emulator.after_request.clear()
        queries = live_query_after_undeploy(emulator, times=1)
        change(stack)
        results = stack.update()
        failures = {k: r.reason for k, r in results.items() if r.status != "SUCCESS"}
        assert results and not failures, (what, failures)
        if what.startswith("connector"):
            assert queries == [200], f"{what}: a live query ran between undeploy and PUT"
        client_works(emulator, str(n))
    emulator.after_request.clear()
    deleted = stack.delete()
    assert all(r.status == "SUCCESS" for r in deleted.values()), deleted
    assert_nothing_of_ours_left(emulator)
    stack.physical.clear()
    stack.data.clear()
    stack.applied.clear()
    created(stack)
    client_works(emulator, "again")


# ----------------------------------------------------------------------------- other ML rules


def register_body(connector_id: str, config: dict, *, function_first: bool) -> dict:
    head = {"name": "probe", "connector_id": connector_id}
    if function_first:
        return {**head, "function_name": "remote", "model_config": config}
    return {**head, "model_config": config, "function_name": "remote"}


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("embedding_dimension", "Embedding dimension must be provided for remote text embedding"),
        ("framework_type", "Framework type must be provided for remote text embedding model"),
    ],
)
def test_emulator_a_remote_text_embedding_config_is_checked_only_after_function_name(
    missing: str, message: str, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    config = e5_model_config()
    del config[missing]
    path = "/_plugins/_ml/models/_register"
    connector_id = stack.data[CONNECTOR]["ConnectorId"]
    status, body = signed_request(
        emulator, SETUP, "POST", path, register_body(connector_id, config, function_first=True)
    )
    assert status == 400 and message in str(body)
    # model_config first: parsed as a BaseModelConfig, so the remote checks never run.
    status, body = signed_request(
        emulator, SETUP, "POST", path, register_body(connector_id, config, function_first=False)
    )
    assert status == 200, body


def test_our_register_body_names_function_name_before_model_config(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    seen: list[list[str]] = []
    serve = emulator._model_register

    def recording(request):  # type: ignore[no-untyped-def]
        seen.append(list(request.body))
        return serve(request)

    emulator._model_register = recording  # type: ignore[method-assign]
    created(stack)
    ((keys),) = seen
    assert keys.index("function_name") < keys.index("model_config")


def test_emulator_ml_commons_retries_only_throttling_tagged_endpoint_answers(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)  # the connector's max_retry_times is 5
    model_id = stack.data[MODEL]["ModelId"]
    path = f"/_plugins/_ml/models/{model_id}/_predict"
    predict = {"parameters": {"texts": ["q"], "content_type": "query"}}
    emulator.endpoint_answers[:] = [(400, "ThrottlingException:http://internal")] * 3
    assert signed_request(emulator, CLIENT, "POST", path, predict)[0] == 200
    assert emulator.endpoint_calls == 4
    emulator.endpoint_answers[:] = [(503, None), (200, None)]
    status, body = signed_request(emulator, CLIENT, "POST", path, predict)
    assert status == 503 and "Error from remote service" in str(body)
    assert emulator.endpoint_answers == [(200, None)], "an untagged 503 is not retried"
    emulator.endpoint_answers[:] = [(400, "ThrottlingException")] * 7
    status, body = signed_request(emulator, CLIENT, "POST", path, predict)
    assert status == 400 and "remote server throttling" in str(body)
    assert len(emulator.endpoint_answers) == 1, "one call plus max_retry_times retries"


def test_a_description_update_waits_for_a_deployment_in_progress(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    model_id = stack.data[MODEL]["ModelId"]
    ml = "/_plugins/_ml/models/" + model_id
    assert signed_request(emulator, SETUP, "POST", ml + "/_undeploy")[0] == 200
    emulator.ml_settings[AUTO_DEPLOY] = False
    assert signed_request(emulator, SETUP, "POST", ml + "/_deploy")[0] == 200
    emulator.deploy_polls = 4
    status, body = signed_request(emulator, SETUP, "PUT", ml, {"description": "x"})
    assert status == 409 and "Model is deploying" in str(body)
    stack.props[MODEL]["Description"] = "new words"
    result = stack.update()[MODEL]
    assert result.status == "SUCCESS", result.reason
    assert emulator.models[model_id]["description"] == "new words"
    assert emulator.models[model_id]["model_state"] == "DEPLOYED"


def test_emulator_a_remote_deploy_answers_completed(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    ml = "/_plugins/_ml/models/" + stack.data[MODEL]["ModelId"]
    assert signed_request(emulator, SETUP, "POST", ml + "/_undeploy")[0] == 200
    status, body = signed_request(emulator, SETUP, "POST", ml + "/_deploy")
    assert status == 200 and body["status"] == "COMPLETED"


@pytest.mark.parametrize("access_control", [False, True])
def test_emulator_deleting_a_missing_connector_or_group(
    access_control: bool, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    emulator.ml_settings[ACCESS_CONTROL] = access_control
    for kind in ("connectors", "model_groups"):
        status, body = signed_request(
            emulator, SETUP, "DELETE", f"/_plugins/_ml/{kind}/AAAAAAAAAAAAAAAAAAAA"
        )
        if access_control:  # the access check's GET finds nothing
            assert status == 404 and "Failed to find" in str(body)
        else:
            assert status == 200 and body["result"] == "not_found"
        # An admin skips the access check either way.
        status, body = signed_request(
            emulator, MASTER, "DELETE", f"/_plugins/_ml/{kind}/AAAAAAAAAAAAAAAAAAAA"
        )
        assert status == 200 and body["result"] == "not_found"


@pytest.mark.parametrize("access_control", [False, True])
def test_delete_when_everything_is_already_gone_succeeds_under_either_answer(
    access_control: bool, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    emulator.ml_settings[ACCESS_CONTROL] = access_control
    created(stack)
    emulator.indices.clear()
    emulator.aliases.clear()
    emulator.models.clear()
    emulator.model_groups.clear()
    emulator.connectors.clear()
    results = stack.delete()
    assert [r.status for r in results.values()] == ["SUCCESS"] * 4, results
    assert_nothing_of_ours_left(emulator)


@pytest.mark.parametrize(
    ("alias", "accepted"),
    [("Docs", True), (".docs-alias", True), ("_docs", False), ("do#cs", False), ("a,b", False)],
)
def test_emulator_alias_names_follow_core_rules_not_index_name_rules(
    alias: str, accepted: bool, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    """validateIndexOrAliasName only: an alias may be upper case or start with a dot."""
    created(stack)
    concrete = stack.data[INDEX]["IndexName"]
    actions = {"actions": [{"add": {"index": concrete, "alias": alias}}]}
    status, body = signed_request(emulator, MASTER, "POST", "/_aliases", actions)
    if accepted:
        assert status == 200, body
    else:
        assert status == 400 and body["error"]["type"] == "invalid_alias_name_exception"


# ----------------------------------------------------------------------------- trusted endpoints


def _connector_body(url: str) -> dict:
    return {
        "name": "probe", "description": "d", "version": 1, "protocol": "aws_sigv4",
        "parameters": {"region": "cn-north-1", "service_name": "sagemaker", "host": url},
        "credential": {"roleArn": CONNECTOR_ROLE},
        "actions": [{"action_type": "predict", "method": "POST", "url": "${parameters.host}",
                     "headers": {"content-type": "application/json"}, "request_body": "{}"}],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/e5/invocations", 200),
        ("https://runtime.sagemaker.cn-north-1.amazonaws.com.cn/endpoints/e5/invocations", 400),
        ("https://runtime.sagemaker.us-east-1.amazonaws.com.evil.example/endpoints/e5", 400),
        ("http://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/e5/invocations", 400),
    ],
)
def test_emulator_connector_urls_must_match_the_default_trusted_endpoint_regex(
    stack: Stack, emulator: OpenSearchEmulator, url: str, status: int
) -> None:
    """Placeholders are filled in before the match, and the whole URL must match."""
    created(stack)  # the setup role may then create connectors and pass the connector role
    got, body = signed_request(
        emulator, SETUP, "POST", "/_plugins/_ml/connectors/_create", _connector_body(url)
    )
    assert got == status, body
    if status == 400:
        assert "trusted connector endpoint regex" in body["error"]["reason"]


def test_a_china_partition_connector_fails_its_create_with_the_servers_reason(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    """Why synth refuses cn-* regions (stacks/config.py): the deploy would fail here."""
    stack.props[CONNECTOR]["UrlSuffix"] = "amazonaws.com.cn"
    results = stack.create()
    assert results[CONNECTOR].status == "FAILED"
    assert "trusted connector endpoint regex" in results[CONNECTOR].reason
    assert emulator.connectors == {}


def test_emulator_an_update_to_an_untrusted_url_is_refused(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    stack.props[CONNECTOR]["UrlSuffix"] = "amazonaws.com.cn"
    results = stack.update()
    assert results[CONNECTOR].status == "FAILED"
    assert "trusted connector endpoint regex" in results[CONNECTOR].reason
    ((_, connector),) = emulator.connectors.items()
    assert connector["actions"][0]["url"].startswith("https://runtime.sagemaker.us-east-1.")

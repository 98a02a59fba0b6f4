"""lambdas/ml_health against the emulated domain: healthy, and each way the ML path breaks."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.credentials import ReadOnlyCredentials

from tests.ml_health.conftest import UNMAPPED, Deployed, health
from tests.support.domain_fixtures import CLIENT, REGION

DIMENSION = 384
PREDICT = "/_plugins/_ml/models/{}/_predict"


def predict_calls(d: Deployed) -> list[tuple[str, str, str, int]]:
    return [c for c in d.domain.calls(CLIENT.arn) if c[2].endswith("/_predict")]


def test_deployed_model_that_predicts_is_healthy(deployed: Deployed) -> None:
    result = health.check(deployed.check_as(), deployed.model_id, DIMENSION)
    assert result.healthy and result.deployed and result.predicted
    assert result.reason == ""
    assert result.latency_ms is not None and result.latency_ms >= 0
    # It really asked for an embedding, as a query, signed as the search client.
    (call,) = predict_calls(deployed)
    assert call[1] == "POST" and call[3] == 200


def test_run_publishes_healthy_metrics(deployed: Deployed) -> None:
    published: list[tuple[str, list[dict[str, Any]]]] = []
    out = health.run(
        deployed.check_as(), deployed.model_id, DIMENSION, "dev", "E5Search/MlHealth",
        lambda ns, data: published.append((ns, data)),
    )  # fmt: skip
    assert out["healthy"] is True
    ((namespace, data),) = published
    assert namespace == "E5Search/MlHealth"
    values = {d["MetricName"]: d["Value"] for d in data}
    assert values["Healthy"] == 1.0
    assert values["ModelDeployed"] == 1.0
    assert values["PredictSucceeded"] == 1.0
    assert "PredictLatency" in values
    assert all(d["Dimensions"] == [{"Name": "Environment", "Value": "dev"}] for d in data)
    units = {d["MetricName"]: d["Unit"] for d in data}
    assert units["PredictLatency"] == "Milliseconds"


def test_undeployed_model_is_unhealthy_without_calling_predict(deployed: Deployed) -> None:
    status, _ = deployed.master("POST", f"/_plugins/_ml/models/{deployed.model_id}/_undeploy")
    assert status == 200
    result = health.check(deployed.check_as(), deployed.model_id, DIMENSION)
    assert not result.healthy and not result.deployed and not result.predicted
    assert result.reason == f"model {deployed.model_id} is UNDEPLOYED, not DEPLOYED"
    assert predict_calls(deployed) == []
    values = {d["MetricName"]: d["Value"] for d in health.metric_data(result, "dev")}
    assert values == {"Healthy": 0.0, "ModelDeployed": 0.0, "PredictSucceeded": 0.0}


def test_model_stuck_in_deploy_failed_is_unhealthy(deployed: Deployed) -> None:
    """A redeploy that fails (e.g. after a node replacement) leaves DEPLOY_FAILED."""
    mid = deployed.model_id
    deployed.master("POST", f"/_plugins/_ml/models/{mid}/_undeploy")
    deployed.domain.faults.fail_next_deploy("Connection refused by the endpoint")
    deployed.master("POST", f"/_plugins/_ml/models/{mid}/_deploy")
    for _ in range(deployed.domain.deploy_polls + 1):
        _, model = deployed.master("GET", f"/_plugins/_ml/models/{mid}")
    assert model["model_state"] == "DEPLOY_FAILED"
    result = health.check(deployed.check_as(), mid, DIMENSION)
    assert result.reason == f"model {mid} is DEPLOY_FAILED, not DEPLOYED"
    assert not result.healthy


def test_missing_model_is_named(deployed: Deployed) -> None:
    result = health.check(deployed.check_as(), "noSuchModel123", DIMENSION)
    assert not result.healthy
    assert result.reason == "model noSuchModel123 does not exist"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, {"error": {"type": "m_l_exception", "reason": "Error from remote service"},
               "status": 500}, "_predict: HTTP 500 Error from remote service"),
        (424, {"error": {"type": "status_exception",
                         "reason": "Error from remote service: ModelError"}, "status": 424},
         "_predict: HTTP 424 Error from remote service: ModelError"),
        (503, {"message": "Service Unavailable"}, "_predict: HTTP 503 Service Unavailable"),
    ],
)  # fmt: skip
def test_predict_failure_is_unhealthy_with_the_servers_reason(
    deployed: Deployed, status: int, body: dict[str, Any], expected: str
) -> None:
    deployed.domain.faults.add(1, status, body, path_prefix=PREDICT.format(deployed.model_id))
    result = health.check(deployed.check_as(), deployed.model_id, DIMENSION)
    assert result.deployed and not result.predicted and not result.healthy
    assert result.reason == expected
    assert result.latency_ms is not None
    assert deployed.domain.faults.pending() == 0
    values = {d["MetricName"]: d["Value"] for d in health.metric_data(result, "dev")}
    assert values["Healthy"] == 0.0 and values["ModelDeployed"] == 1.0
    assert values["PredictSucceeded"] == 0.0


def test_predict_timeout_is_unhealthy_and_bounded(deployed: Deployed) -> None:
    deployed.domain.predict_delay = 2.0
    result = health.check(deployed.check_as(timeout=0.5), deployed.model_id, DIMENSION)
    assert result.deployed and not result.predicted
    assert result.reason.startswith("_predict: timed out")
    assert result.latency_ms is None


def test_dropped_connection_on_predict_is_unhealthy(deployed: Deployed) -> None:
    deployed.domain.faults.drop_connections(1, path_prefix=PREDICT.format(deployed.model_id))
    result = health.check(deployed.check_as(), deployed.model_id, DIMENSION)
    assert result.deployed and not result.predicted
    assert result.reason.startswith("_predict: ")
    assert "\n" not in result.reason and len(result.reason) <= health.REASON_LIMIT


def test_wrong_vector_size_is_unhealthy(deployed: Deployed) -> None:
    result = health.check(deployed.check_as(), deployed.model_id, 768)
    assert not result.predicted
    assert result.reason == "_predict returned 384 dimensions, expected 768"


def test_identity_without_the_client_mapping_is_refused(deployed: Deployed) -> None:
    """The check's rights come from the search-client mapping: without it, 403."""
    result = health.check(deployed.check_as(UNMAPPED), deployed.model_id, DIMENSION)
    assert not result.deployed
    assert result.reason.startswith(f"GET model {deployed.model_id}: HTTP 403")


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A TCP port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_unresponsive_domain_times_out_on_the_model_get(blackhole: str) -> None:
    creds = ReadOnlyCredentials(CLIENT.access_key, CLIENT.secret_key, CLIENT.session_token)
    domain = health.Domain(blackhole, REGION, creds, timeout_seconds=0.3)
    result = health.check(domain, "m1", DIMENSION)
    assert not result.deployed
    assert result.reason.startswith("GET model m1: timed out")


def test_handler_assumes_the_client_role_with_the_session_policy_and_publishes(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = json.dumps({"Version": "2012-10-17", "Statement": []})
    env = {
        "AWS_REGION": REGION, "DOMAIN_ENDPOINT": deployed.domain.endpoint,
        "MODEL_ID": deployed.model_id, "EMBEDDING_DIMENSION": str(DIMENSION),
        "CLIENT_ROLE_ARN": CLIENT.arn, "SESSION_POLICY": policy, "ENVIRONMENT_NAME": "dev",
        "METRIC_NAMESPACE": "E5Search/MlHealth", "REQUEST_TIMEOUT_SECONDS": "5",
    }  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assumed: list[tuple[str, str]] = []
    published: list[tuple[str, list[dict[str, Any]]]] = []

    def assume(role_arn: str, session_policy: str) -> ReadOnlyCredentials:
        assumed.append((role_arn, session_policy))
        return ReadOnlyCredentials(CLIENT.access_key, CLIENT.secret_key, CLIENT.session_token)

    monkeypatch.setattr(health, "_assume_client_role", assume)
    monkeypatch.setattr(health, "_put_metrics", lambda ns, data: published.append((ns, data)))
    out = health.handler({}, None)
    assert out["healthy"] is True
    assert assumed == [(CLIENT.arn, policy)]
    assert published and published[0][0] == "E5Search/MlHealth"


def test_handler_without_its_configuration_fails_the_invocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deployment bug must fail loudly (Lambda Errors), not publish a misleading 0."""
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("CLIENT_ROLE_ARN", raising=False)
    with pytest.raises(health.ConfigurationError, match="CLIENT_ROLE_ARN is not set"):
        health.handler({}, None)

"""Scheduled health check of the ML path: the model is DEPLOYED and a test ``_predict`` answers.

Why a check of our own: OpenSearch Service publishes no metric for an ML
Commons model. A model left in ``DEPLOY_FAILED`` or ``UNDEPLOYED`` (after a
node replacement, say), or a connector whose SageMaker calls fail, is
otherwise found by users when semantic ingest and neural queries start failing.

Every run publishes ``Healthy`` (1 or 0), ``ModelDeployed``, ``PredictSucceeded``
and, when a prediction answered, ``PredictLatency`` (milliseconds) to the
namespace in ``METRIC_NAMESPACE`` with dimension ``Environment``. The alarm on
``Healthy`` treats missing data as breaching, so a check that cannot run at all
(crash, throttled, role denied) alarms too.

Identity: the function's own role may only assume the search-client role, and
it does so with a session policy (``SESSION_POLICY``, written by the stack)
that allows nothing but ``GET`` of the model and ``POST`` of its ``_predict``
on this domain. Inside OpenSearch the session is the search-client role
(``cluster:admin/opensearch/ml/models/get`` and ``.../ml/predict`` are among
its permissions), so no extra security-plugin mapping is needed.

This package imports nothing from the rest of the repository; boto3 and
botocore come with the Lambda runtime, urllib3 is bundled from
lambdas/requirements.txt.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

ML = "/_plugins/_ml"
PROBE = "health check of the semantic search path"
REASON_LIMIT = 300
DEFAULT_TIMEOUT_SECONDS = 20.0


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete: a deployment bug, so the invocation fails."""


@dataclass(frozen=True)
class Result:
    """What one check found; ``reason`` is empty when healthy, else one line."""

    deployed: bool
    predicted: bool
    latency_ms: float | None
    reason: str

    @property
    def healthy(self) -> bool:
        return self.deployed and self.predicted

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "model_deployed": self.deployed,
            "predict_succeeded": self.predicted,
            "predict_latency_ms": self.latency_ms,
            "reason": self.reason,
        }


class Domain:
    """Signed JSON requests to one domain, without retries: a check reports, it does not heal."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: ReadOnlyCredentials,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        # The stack passes the domain's host name; tests pass the emulator's URL.
        self.base = (
            endpoint if endpoint.startswith(("http://", "https://")) else f"https://{endpoint}"
        )
        self.region = region
        self.credentials = credentials
        self.pool = urllib3.PoolManager(
            retries=False,
            timeout=urllib3.Timeout(connect=min(5.0, timeout_seconds), read=timeout_seconds),
        )

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = self.base + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self.credentials, "es", self.region).add_auth(request)
        response = self.pool.request(
            method, url, body=data, headers=dict(request.headers.items()), preload_content=True
        )
        text = response.data.decode("utf-8", "replace") if response.data else ""
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return response.status, parsed


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= REASON_LIMIT else line[: REASON_LIMIT - 3] + "..."


def _error_of(body: Any) -> str:
    """The most specific message an OpenSearch error body carries."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("reason") or error.get("type") or error)
        if error is not None:
            return str(error)
        for key in ("message", "Message"):
            if body.get(key):
                return str(body[key])
    return str(body)[:200]


def _vectors(body: Any) -> list[Any] | None:
    """Vectors of a remote-model ``_predict`` answer (``dataAsMap.response``, or ``data``)."""
    try:
        outputs = body["inference_results"][0]["output"]
    except (KeyError, IndexError, TypeError):
        return None
    for output in outputs if isinstance(outputs, list) else []:
        if not isinstance(output, dict):
            continue
        response = (output.get("dataAsMap") or {}).get("response")
        if isinstance(response, list) and all(isinstance(v, list) for v in response):
            return response
        if isinstance(output.get("data"), list):
            return [output["data"]]
    return None


def check(
    domain: Domain,
    model_id: str,
    dimension: int,
    clock: Callable[[], float] = time.monotonic,
) -> Result:
    """GET the model, then embed one query; any failure becomes a one-line reason."""
    try:
        status, body = domain.call("GET", f"{ML}/models/{model_id}")
    except (urllib3.exceptions.HTTPError, OSError) as err:
        return Result(False, False, None, _one_line(f"GET model {model_id}: {_network(err)}"))
    if status == 404:
        return Result(False, False, None, f"model {model_id} does not exist")
    if status != 200 or not isinstance(body, dict):
        return Result(
            False, False, None, _one_line(f"GET model {model_id}: HTTP {status} {_error_of(body)}")
        )
    state = body.get("model_state")
    if state != "DEPLOYED":
        return Result(False, False, None, f"model {model_id} is {state}, not DEPLOYED")

    started = clock()
    try:
        status, body = domain.call(
            "POST",
            f"{ML}/models/{model_id}/_predict",
            {"parameters": {"texts": [PROBE], "content_type": "query"}},
        )
    except (urllib3.exceptions.HTTPError, OSError) as err:
        return Result(True, False, None, _one_line(f"_predict: {_network(err)}"))
    latency_ms = round((clock() - started) * 1000.0, 1)
    if status != 200:
        return Result(
            True, False, latency_ms, _one_line(f"_predict: HTTP {status} {_error_of(body)}")
        )
    vectors = _vectors(body)
    if vectors is None or len(vectors) != 1:
        count = "no" if vectors is None else len(vectors)
        return Result(True, False, latency_ms, f"_predict returned {count} vectors for 1 text")
    if len(vectors[0]) != dimension:
        return Result(
            True,
            False,
            latency_ms,
            f"_predict returned {len(vectors[0])} dimensions, expected {dimension}",
        )
    return Result(True, True, latency_ms, "")


def _network(err: BaseException) -> str:
    if isinstance(err, (urllib3.exceptions.TimeoutError, TimeoutError)):
        return f"timed out ({type(err).__name__})"
    reason = getattr(err, "reason", None)
    return f"{type(err).__name__}: {reason or err}"


def metric_data(result: Result, environment: str) -> list[dict[str, Any]]:
    """The CloudWatch datapoints of one check (``PutMetricData`` ``MetricData``)."""
    dims = [{"Name": "Environment", "Value": environment}]
    data = [
        {"MetricName": "Healthy", "Dimensions": dims, "Value": float(result.healthy),
         "Unit": "Count"},
        {"MetricName": "ModelDeployed", "Dimensions": dims, "Value": float(result.deployed),
         "Unit": "Count"},
        {"MetricName": "PredictSucceeded", "Dimensions": dims, "Value": float(result.predicted),
         "Unit": "Count"},
    ]  # fmt: skip
    if result.latency_ms is not None:
        data.append(
            {"MetricName": "PredictLatency", "Dimensions": dims, "Value": result.latency_ms,
             "Unit": "Milliseconds"}
        )  # fmt: skip
    return data


def _setting(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set")
    return value


def _assume_client_role(role_arn: str, session_policy: str) -> ReadOnlyCredentials:
    import boto3  # the Lambda runtime's copy; imported here so tests need no AWS

    creds = boto3.client("sts").assume_role(
        RoleArn=role_arn,
        RoleSessionName="ml-health-check",
        DurationSeconds=900,
        Policy=session_policy,
    )["Credentials"]
    return ReadOnlyCredentials(
        creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    )


def _put_metrics(namespace: str, data: list[dict[str, Any]]) -> None:
    import boto3

    boto3.client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=data)


def run(
    domain: Domain,
    model_id: str,
    dimension: int,
    environment: str,
    namespace: str,
    put_metrics: Callable[[str, list[dict[str, Any]]], None],
) -> dict[str, Any]:
    """One check, its metrics published, its result logged on one line."""
    result = check(domain, model_id, dimension)
    put_metrics(namespace, metric_data(result, environment))
    if result.healthy:
        LOG.info(
            "ML path healthy: model %s DEPLOYED, _predict in %s ms", model_id, result.latency_ms
        )
    else:
        LOG.error("ML path unhealthy: %s", result.reason)
    return result.as_dict()


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """EventBridge schedule entry point."""
    region = _setting("AWS_REGION")
    credentials = _assume_client_role(_setting("CLIENT_ROLE_ARN"), _setting("SESSION_POLICY"))
    domain = Domain(
        _setting("DOMAIN_ENDPOINT"),
        region,
        credentials,
        float(os.environ.get("REQUEST_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)),
    )
    return run(
        domain,
        _setting("MODEL_ID"),
        int(_setting("EMBEDDING_DIMENSION")),
        _setting("ENVIRONMENT_NAME"),
        _setting("METRIC_NAMESPACE"),
        _put_metrics,
    )

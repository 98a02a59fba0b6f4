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
botocore come with the Lambda runtime; opensearch-py (the client) and what it
imports at run time are bundled from lambdas/requirements.txt.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from botocore.credentials import ReadOnlyCredentials

# opensearch-py's signer module imports requests, which warns on import when no
# character-detection library is installed; none is bundled (nothing here decodes
# a requests response).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Unable to find acceptable character detection")
    from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth, Urllib3HttpConnection
    from opensearchpy.exceptions import ConnectionError as ClientConnectionError
    from opensearchpy.exceptions import ConnectionTimeout, TransportError

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

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
    """The model's two APIs on one domain, through opensearch-py, without retries.

    A check reports, it does not heal: opensearch-py's own retries are off
    (``max_retries=0``, ``retry_on_timeout=False``, no ``retry_on_status``) so one
    run is one GET and at most one ``_predict``, each bounded by the timeout.
    Requests are signed by opensearch-py's ``Urllib3AWSV4SignerAuth``.
    """

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
        https = self.base.startswith("https://")
        self.client = OpenSearch(
            hosts=[self.base],
            http_auth=Urllib3AWSV4SignerAuth(credentials, region, "es"),
            connection_class=Urllib3HttpConnection,
            use_ssl=https,
            verify_certs=https,
            timeout=timeout_seconds,
            max_retries=0,
            retry_on_timeout=False,
            retry_on_status=(),
        )

    def get_model(self, model_id: str) -> tuple[int, Any]:
        """``GET /_plugins/_ml/models/{id}``: (status, body)."""
        return _answer(lambda: self.client.plugins.ml.get_model(model_id=model_id))

    def predict(self, model_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        """``POST /_plugins/_ml/models/{id}/_predict``: (status, body)."""
        return _answer(lambda: self.client.plugins.ml.predict_model(model_id=model_id, body=body))


def _answer(call: Callable[[], Any]) -> tuple[int, Any]:
    """(200, body), or (status, error body) for an HTTP error; no answer at all raises."""
    try:
        return 200, call()
    except ClientConnectionError:
        raise
    except TransportError as err:
        status = err.status_code if isinstance(err.status_code, int) else 0
        # info is the parsed JSON error body; error is the raw text when it was not JSON.
        return status, err.info if err.info is not None else err.error


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
        status, body = domain.get_model(model_id)
    except ClientConnectionError as err:
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
        status, body = domain.predict(
            model_id, {"parameters": {"texts": [PROBE], "content_type": "query"}}
        )
    except ClientConnectionError as err:
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


def _network(err: ClientConnectionError) -> str:
    """One line for "no answer": opensearch-py wraps urllib3's exception in ``info``."""
    cause = err.info if isinstance(err.info, BaseException) else err
    if isinstance(err, ConnectionTimeout) or isinstance(
        cause, (urllib3.exceptions.TimeoutError, TimeoutError)
    ):
        return f"timed out ({type(cause).__name__})"
    reason = getattr(cause, "reason", None)
    return f"{type(cause).__name__}: {reason or cause}"


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

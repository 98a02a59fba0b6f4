"""Provider-framework entry points for the ML setup custom resources.

``on_event`` does the work of Create/Update/Delete and returns the physical
id, the attributes, and (under a private key that the framework passes to
``is_complete`` but never to CloudFormation) what remains to wait for.
``is_complete`` polls that, once per framework query interval.

Failures are raised with one line for the CloudFormation event: the resource,
the request type, and OpenSearch's error type and reason. Stack traces go to
CloudWatch Logs only; the ResponseURL (a pre-signed URL) is never logged.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

from . import access_mapping, connector, identity, model, search_pipeline, semantic_index
from .common import Ctx, Outcome, Runtime, SetupError
from .opensearch_client import DeadlineExceeded, OpenSearchError, SystemClock
from .properties import PropertyError, Props

LOG = logging.getLogger()
LOG.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

RESOURCES: dict[str, ModuleType] = {
    access_mapping.RESOURCE_TYPE: access_mapping,
    connector.RESOURCE_TYPE: connector,
    model.RESOURCE_TYPE: model,
    semantic_index.RESOURCE_TYPE: semantic_index,
    search_pipeline.RESOURCE_TYPE: search_pipeline,
}
WAIT_KEY = "MlSetupWait"
# Leave the Lambda time to report a failure instead of being killed mid-retry.
SAFETY_MARGIN_SECONDS = 10.0
DEFAULT_WAIT_TIMEOUT_SECONDS = 1200.0

_runtime: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    """Install the dependencies (tests: a fake clock and test identities)."""
    global _runtime
    _runtime = runtime


def _get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(
            clock=SystemClock(),
            setup_credentials=identity.setup_credentials(),
            assume_role=identity.sts_assumer(),
            wait_timeout_seconds=float(
                os.environ.get("WAIT_TIMEOUT_SECONDS", DEFAULT_WAIT_TIMEOUT_SECONDS)
            ),
        )
    return _runtime


def _describe(event: dict[str, Any]) -> str:
    return (
        f"{event.get('RequestType')} {event.get('ResourceType')} "
        f"{event.get('LogicalResourceId')} ({event.get('PhysicalResourceId', 'new')})"
    )


def _context(event: dict[str, Any], lambda_context: Any) -> tuple[ModuleType, Props, Ctx]:
    resource_type = str(event.get("ResourceType", ""))
    module = RESOURCES.get(resource_type)
    if module is None:
        raise SetupError(
            f"unknown ResourceType {one_line(repr(resource_type), 60)}; "
            f"expected one of {', '.join(RESOURCES)}"
        )
    runtime = _get_runtime()
    props = Props(event.get("ResourceProperties"), resource_type)
    remaining = lambda_context.get_remaining_time_in_millis() / 1000.0
    deadline = runtime.clock.now() + max(1.0, remaining - SAFETY_MARGIN_SECONDS)
    return module, props, Ctx.from_props(runtime, props, deadline, _require(event, "RequestType"))


# CloudFormation shows the reason in one console line and caps the whole
# response at 4,096 bytes: keep a reason to one line of a few hundred characters.
MAX_REASON = 400


def one_line(text: str, limit: int = MAX_REASON) -> str:
    """Collapse whitespace and cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _fail(event: dict[str, Any], exc: Exception) -> SetupError:
    kind = one_line(str(event.get("ResourceType")), 60)
    what = f"{kind} {one_line(str(event.get('RequestType')), 20)} failed"
    if isinstance(exc, DeadlineExceeded) and exc.status == 0:
        return SetupError(one_line(f"{what}: the domain did not answer in time: {exc}"))
    if isinstance(exc, (OpenSearchError, SetupError, PropertyError)):
        return SetupError(one_line(f"{what}: {exc}"))
    LOG.exception("unexpected error in %s", _describe(event))
    return SetupError(one_line(f"{what}: internal error {type(exc).__name__}: {exc}"))


def _require(event: dict[str, Any], key: str) -> str:
    """A mandatory event field, or a failure that names it."""
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise SetupError(f"malformed event: {key} is missing or not a string")
    return value


def _response(outcome: Outcome) -> dict[str, Any]:
    result: dict[str, Any] = {"PhysicalResourceId": outcome.physical_id, "Data": outcome.data}
    if outcome.wait:
        result[WAIT_KEY] = outcome.wait
    return result


def on_event(event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
    """Create, update or delete one resource; returns what the Provider framework expects."""
    LOG.info("on_event %s", _describe(event))
    try:
        module, props, ctx = _context(event, lambda_context)
        request = _require(event, "RequestType")
        if request == "Create":
            outcome = module.create(props, ctx)
        elif request == "Update":
            old = Props(event.get("OldResourceProperties"), str(event["ResourceType"]))
            outcome = module.update(props, old, _require(event, "PhysicalResourceId"), ctx)
        elif request == "Delete":
            module.delete(props, _require(event, "PhysicalResourceId"), ctx)
            return {"PhysicalResourceId": event["PhysicalResourceId"]}
        else:
            raise SetupError(f"unknown RequestType {one_line(repr(request), 40)}")
    except Exception as exc:
        raise _fail(event, exc) from None
    LOG.info("on_event result: %s -> %s", _describe(event), outcome.physical_id)
    return _response(outcome)


def is_complete(event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
    """Report whether what on_event started is finished; raise if it failed."""
    wait = event.get(WAIT_KEY)
    if event.get("RequestType") == "Delete" or not wait:
        return {"IsComplete": True}
    try:
        module, props, ctx = _context(event, lambda_context)
        outcome = module.poll(props, _require(event, "PhysicalResourceId"), wait, ctx)
    except Exception as exc:
        raise _fail(event, exc) from None
    if outcome is None:
        return {"IsComplete": False}
    return {"IsComplete": True, "Data": outcome.data}


__all__ = ["is_complete", "on_event", "set_runtime"]

"""The SigV4 client's retry rules and error parsing, and property coercion, in isolation."""

from __future__ import annotations

import pytest
from ml_setup.common import Runtime
from ml_setup.opensearch_client import (
    Backoff,
    DeadlineExceeded,
    OpenSearchClient,
    OpenSearchError,
    PermissionDenied,
    parse_error,
)
from ml_setup.properties import PropertyError, Props

from tests.ml_setup.cfn import FakeClock
from tests.ml_setup.conftest import OUTSIDER, SETUP
from tests.ml_setup.http import signed_request
from tests.support.opensearch_emulator import OpenSearchEmulator


def client(
    emulator: OpenSearchEmulator, clock: FakeClock, seconds: float = 120
) -> OpenSearchClient:
    return OpenSearchClient(
        emulator.endpoint,
        emulator.region,
        lambda: SETUP.credentials,
        deadline=clock.now() + seconds,
        clock=clock,
        backoff=Backoff(),
    )


def test_a_post_is_not_retried_on_503_but_is_on_429(
    emulator: OpenSearchEmulator, clock: FakeClock, runtime: Runtime
) -> None:
    emulator.role_mappings["ml_full_access"] = {"backend_roles": [SETUP.arn]}
    emulator.faults.unavailable(1, path_prefix="/_plugins/_ml/connectors/_search")
    c = client(emulator, clock)
    with pytest.raises(OpenSearchError) as caught:
        c.request("POST", "/_plugins/_ml/connectors/_search", body={"query": {"match_all": {}}})
    assert caught.value.status == 503
    emulator.faults.throttle(2, path_prefix="/_plugins/_ml/connectors/_search")
    response = c.request(
        "POST", "/_plugins/_ml/connectors/_search", body={"query": {"match_all": {}}}
    )
    assert response.status == 200 and len(clock.sleeps) == 2


def test_retries_stop_at_the_deadline_with_the_last_error(
    emulator: OpenSearchEmulator, clock: FakeClock, runtime: Runtime
) -> None:
    emulator.faults.down = True
    started = clock.now()
    with pytest.raises(DeadlineExceeded) as caught:
        client(emulator, clock, seconds=90).wait_until_available()
    assert caught.value.status == 503 and "gave up after" in caught.value.reason
    assert clock.now() - started < 90
    assert all(0 <= s <= 20 for s in clock.sleeps)


def test_the_emulator_rejects_bad_signatures_wrong_service_and_outsiders(
    emulator: OpenSearchEmulator,
) -> None:
    assert signed_request(emulator, SETUP, "GET", "/_cluster/health", secret="wrong")[0] == 403
    assert signed_request(emulator, SETUP, "GET", "/_cluster/health", service="aoss")[0] == 403
    status, body = signed_request(emulator, OUTSIDER, "GET", "/_cluster/health")
    # The front end's IAM denial has the AWS shape, not OpenSearch's error object.
    assert status == 403 and set(body) == {"Message"}
    assert f"User: {OUTSIDER.arn} is not authorized to perform: es:ESHttpGet" in body["Message"]
    # Signed correctly but not mapped to any role: FGAC refuses.
    status, body = signed_request(emulator, SETUP, "GET", "/_cluster/health")
    assert status == 403 and body["error"]["type"] == "security_exception"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b'{"error":{"type":"status_exception","reason":"Failed to find model"},"status":404}',
            ("status_exception", "Failed to find model"),
        ),
        (
            b'{"error":{"type":"IllegalArgumentException","reason":"Invalid Request",'
            b'"details":"bad"},"status":400}',
            ("IllegalArgumentException", "Invalid Request: bad"),
        ),
        (b'{"status":"NOT_FOUND","message":"\'x\' not found."}', ("NOT_FOUND", "'x' not found.")),
        (b'{"Message":"User: arn is not authorized"}', ("error", "User: arn is not authorized")),
        (b"<html>bad gateway</html>", ("http_error", "<html>bad gateway</html>")),
    ],
)
def test_error_shapes_are_reduced_to_type_and_reason(raw: bytes, expected: tuple[str, str]) -> None:
    assert parse_error(400, raw) == expected


def test_backoff_is_full_jitter_and_capped() -> None:
    backoff = Backoff(base=1.0, cap=20.0)
    delays = [backoff.delay(attempt) for attempt in range(12) for _ in range(20)]
    assert all(0 <= d <= 20 for d in delays) and max(delays) > 10


def test_cloudformation_strings_are_coerced_and_bad_values_name_the_property() -> None:
    props = Props({"N": "384", "B": "TRUE", "L": ["a-*"], "J": '{"k": 1}'}, "Custom::X")
    assert props.integer("N", lo=1, hi=500) == 384
    assert props.boolean("B") is True
    assert props.string_list("L", what="list") == ["a-*"]
    assert props.mapping("J") == {"k": 1}
    for call in (
        lambda: Props({"N": "3.5"}, "Custom::X").integer("N", lo=1, hi=9),
        lambda: Props({"N": "true"}, "Custom::X").integer("N", lo=1, hi=9),
        lambda: Props({"B": "maybe"}, "Custom::X").boolean("B"),
        lambda: Props({}, "Custom::X").string("Missing"),
    ):
        with pytest.raises(PropertyError, match=r"Custom::X property \w+"):
            call()


class SteadyBackoff(Backoff):
    """Ten seconds between attempts: makes "how long a denial lasted" exact."""

    def delay(self, attempt: int) -> float:
        return 10.0


def steady_client(emulator: OpenSearchEmulator, clock: FakeClock) -> OpenSearchClient:
    return OpenSearchClient(
        emulator.endpoint,
        emulator.region,
        lambda: SETUP.credentials,
        deadline=clock.now() + 280,
        clock=clock,
        backoff=SteadyBackoff(),
    )


def test_the_front_ends_iam_denial_is_retried_past_the_short_bound(
    emulator: OpenSearchEmulator, clock: FakeClock, runtime: Runtime
) -> None:
    # A role created seconds ago: the front end refuses it for 150 s, then admits it.
    emulator.role_mappings["ml_full_access"] = {"backend_roles": [SETUP.arn]}
    emulator.faults.deny(15, 403, principal=SETUP.arn)
    response = steady_client(emulator, clock).wait_until_available()
    assert response.status == 200 and len(clock.sleeps) == 15 and emulator.faults.pending() == 0


def test_a_401_is_retried_past_the_short_bound(
    emulator: OpenSearchEmulator, clock: FakeClock, runtime: Runtime
) -> None:
    emulator.role_mappings["ml_full_access"] = {"backend_roles": [SETUP.arn]}
    emulator.faults.deny(12, 401, principal=SETUP.arn)
    assert steady_client(emulator, clock).wait_until_available().status == 200
    assert len(clock.sleeps) == 12


def test_a_missing_fine_grained_permission_fails_after_the_short_bound_naming_it(
    emulator: OpenSearchEmulator, clock: FakeClock, runtime: Runtime
) -> None:
    # Not mapped to any role: the security plugin's "no permissions for [...]".
    started = clock.now()
    with pytest.raises(PermissionDenied) as caught:
        steady_client(emulator, clock).wait_until_available()
    waited = clock.now() - started
    assert 60 <= waited < 80, waited
    assert caught.value.status == 403 and caught.value.error_type == "security_exception"
    assert caught.value.reason.startswith("missing permission [cluster:monitor/health]")
    assert "\n" not in str(caught.value) and len(str(caught.value)) <= 700


def test_a_fine_grained_denial_that_clears_within_the_bound_is_retried(
    emulator: OpenSearchEmulator, clock: FakeClock, runtime: Runtime
) -> None:
    # A role mapping written a moment ago reaches this node after 50 s.
    body = {
        "error": {"type": "security_exception", "reason": "no permissions for [x] and User [a]"},
        "status": 403,
    }
    emulator.role_mappings["ml_full_access"] = {"backend_roles": [SETUP.arn]}
    emulator.faults.add(5, 403, body, principal=SETUP.arn)
    assert steady_client(emulator, clock).wait_until_available().status == 200


def test_an_ml_commons_403_that_persists_fails_after_the_short_bound(
    emulator: OpenSearchEmulator, clock: FakeClock, runtime: Runtime
) -> None:
    body = {
        "error": {
            "type": "status_exception",
            "reason": "User doesn't have privilege to perform this operation on this model",
        },
        "status": 403,
    }
    emulator.role_mappings["ml_full_access"] = {"backend_roles": [SETUP.arn]}
    emulator.faults.add(100, 403, body, principal=SETUP.arn)
    started = clock.now()
    with pytest.raises(PermissionDenied) as caught:
        steady_client(emulator, clock).request("GET", "/_plugins/_ml/models/abc")
    assert clock.now() - started < 80
    assert caught.value.reason.startswith("permission denied (still refused after")
    assert "privilege to perform this operation" in caught.value.reason


# -- opensearch-py underneath: its retries are off, ours are the only ones


CREATE = "/_plugins/_ml/connectors/_create"


@pytest.mark.parametrize("how", ["path", "typed"])
def test_a_dropped_post_is_sent_once_and_fails_with_a_one_line_connection_error(
    emulator: OpenSearchEmulator, clock: FakeClock, runtime: Runtime, how: str
) -> None:
    """opensearch-py would resend after a connection error (Transport retries every
    ConnectionError when max_retries > 0); a POST that may have created an object must not
    be resent blindly, so exactly one attempt reaches the domain, by path or typed API."""
    emulator.role_mappings["ml_full_access"] = {"backend_roles": [SETUP.arn]}
    emulator.faults.drop_connections(3, path_prefix=CREATE)
    c = client(emulator, clock)
    with pytest.raises(OpenSearchError) as caught:
        if how == "path":
            c.request("POST", CREATE, body={})
        else:
            c.call(
                "POST",
                CREATE,
                lambda os, t: os.plugins.ml.create_connector(body={}, request_timeout=t),
            )
    assert caught.value.status == 0 and caught.value.error_type == "connection_error"
    assert "\n" not in str(caught.value) and len(str(caught.value)) <= 700
    assert emulator.faults.pending() == 2 and clock.sleeps == []
    assert len(emulator.calls(SETUP.arn)) == 1


def test_typed_api_calls_are_retried_by_our_rules_only(
    emulator: OpenSearchEmulator, clock: FakeClock, runtime: Runtime
) -> None:
    """A typed plugins.ml call (common.get_model) meeting 503s: every attempt is one of ours
    (one backoff sleep between two attempts), none is opensearch-py's own."""
    from ml_setup.common import get_model

    emulator.role_mappings["ml_full_access"] = {"backend_roles": [SETUP.arn]}
    emulator.faults.unavailable(3, path_prefix="/_plugins/_ml/models/")
    assert get_model(client(emulator, clock), "abcdefghijklmnopqrst") is None  # 404: absent
    attempts = [c for c in emulator.calls(SETUP.arn) if c[2].startswith("/_plugins/_ml/models/")]
    assert [c[3] for c in attempts] == [503, 503, 503, 404]
    assert len(clock.sleeps) == 3


def test_a_path_with_dot_segments_is_refused_before_anything_is_sent(
    emulator: OpenSearchEmulator, clock: FakeClock, runtime: Runtime
) -> None:
    c = client(emulator, clock)
    for call in (
        lambda: c.request("GET", "/_plugins/_ml/models/../../_security/api/roles"),
        lambda: c.call("GET", "/_plugins/_ml/models/..", lambda os, t: os.info()),
    ):
        with pytest.raises(ValueError, match="dot segments"):
            call()
    assert emulator.calls() == []

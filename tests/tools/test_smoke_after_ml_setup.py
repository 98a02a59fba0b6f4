"""The smoke test on a domain our ML setup built, with ML Commons model access control on.

The other smoke tests start from a domain set up by hand as the master user;
this one lets the real custom-resource handlers create the connector, model
group, model, index and roles (as the setup role, a non-admin), then runs
``tools.smoke`` as the search-client role. With
``plugins.ml_commons.model_access_control_enabled`` on, a model group
registered without ``access_mode`` is private to the setup role and every
check that embeds would get 403 (issue 9 item 5).
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from ml_setup import handler
from ml_setup.common import Runtime
from ml_setup.opensearch_client import Backoff

from tests.ml_setup.cfn import FakeClock, Provider
from tests.ml_setup.conftest import Stack
from tests.support.domain_fixtures import CLIENT, CONNECTOR_ROLE, MASTER, REGION, SETUP
from tests.tools.emulated_domain import SmokeTestDomain
from tools import smoke


@pytest.fixture
def ml_setup_domain() -> Iterator[tuple[SmokeTestDomain, Stack]]:
    domain = SmokeTestDomain(
        master=MASTER,
        principals=[SETUP, CLIENT],
        region=REGION,
        access_policy=[MASTER.arn, SETUP.arn, CLIENT.arn],
        pass_role={SETUP.arn: {CONNECTOR_ROLE}},
    )
    domain.ml_settings["plugins.ml_commons.model_access_control_enabled"] = True
    clock = FakeClock()
    handler.set_runtime(
        Runtime(
            clock=clock,
            setup_credentials=lambda: SETUP.credentials,
            assume_role=lambda arn, session: lambda: MASTER.credentials,
            wait_timeout_seconds=600,
            backoff=Backoff(),
        )
    )
    try:
        with domain:
            stack = Stack(Provider(clock), domain.endpoint)
            results = stack.create()
            failures = {k: r.reason for k, r in results.items() if r.status != "SUCCESS"}
            assert not failures, failures
            yield domain, stack
            assert not domain.violations, domain.violations
    finally:
        handler.set_runtime(None)


def test_the_smoke_test_passes_as_the_search_client_with_model_access_control_on(
    ml_setup_domain: tuple[SmokeTestDomain, Stack], capsys: pytest.CaptureFixture[str]
) -> None:
    domain, stack = ml_setup_domain
    ((_, group),) = domain.model_groups.items()
    assert group["owner"] == SETUP.arn, "registered by the non-admin setup role"

    def session() -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=CLIENT.access_key,
            aws_secret_access_key=CLIENT.secret_key,
            aws_session_token=CLIENT.session_token,
            region_name=REGION,
        )

    before = len(domain.calls())
    code = smoke.main(
        ["--endpoint", domain.endpoint, "--model-id", stack.data["Custom::MlModel"]["ModelId"],
         "--index", "documents", "--dimension", "384"],
        session_factory=session,
    )  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0, lines
    calls = domain.calls()[before:]
    assert calls and {principal for principal, *_ in calls} == {CLIENT.arn}
    assert all(status < 400 for *_, status in calls), calls

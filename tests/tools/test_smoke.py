"""The smoke test against an emulated domain: passes when all is right, and names the broken
piece in one line when something is not (each fault is one the real service can have)."""

from __future__ import annotations

import json
import re
import socket

import boto3
import pytest

from tests.support.opensearch_emulator import Principal, hashing_embedder
from tests.tools.conftest import (
    CLIENT,
    CONCRETE_INDEX,
    DISTRACTORS,
    FIELD,
    INDEX,
    MASTER,
    PIPELINE,
    REGION,
    SMOKE_ONLY,
    Deployed,
    client_for,
)
from tests.tools.emulated_domain import undeploy
from tools import smoke


def run(deployed: Deployed, capsys: pytest.CaptureFixture[str], *extra: str,
        who: Principal = MASTER) -> tuple[int, list[str]]:  # fmt: skip
    """``python -m tools.smoke`` with explicit outputs, signing as ``who``."""

    def session() -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=who.access_key,
            aws_secret_access_key=who.secret_key,
            aws_session_token=who.session_token,
            region_name=REGION,
        )

    code = smoke.main(
        ["--endpoint", deployed.domain.endpoint, "--model-id", deployed.model_id,
         "--index", INDEX, "--dimension", "384", *extra],
        session_factory=session,
    )  # fmt: skip
    return code, capsys.readouterr().out.strip().splitlines()


def statuses(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines[:-1]:
        status, rest = line.split(None, 1)
        found[re.split(r"\s{2,}", rest)[0].strip()] = status
    return found


def documents(deployed: Deployed) -> set[str]:
    return set(deployed.domain.indices[CONCRETE_INDEX].docs)


def test_passes_when_everything_works(deployed: Deployed, capsys) -> None:
    code, lines = run(deployed, capsys)
    assert code == 0, lines
    assert statuses(lines) == {
        "domain health": "PASS",
        "model deployed": "PASS",
        "query vs passage": "PASS",
        "neural search": "PASS",
        "cleanup": "PASS",
    }
    assert lines[-1] == "SMOKE PASSED: all checks passed"
    assert all(re.search(r"\d+\.\d\ds", line) for line in lines[:-1]), "each check is timed"
    # It really wrote, searched and deleted a document with a unique id.
    calls = [(m, p) for _, m, p, _ in deployed.domain.calls(MASTER.arn)]
    written = [p for m, p in calls if m == "PUT" and p.startswith(f"/{INDEX}/_doc/smoke-")]
    assert len(written) == 1 and re.fullmatch(rf"/{INDEX}/_doc/smoke-[0-9a-f]{{32}}", written[0])
    assert ("DELETE", written[0]) in calls
    assert ("POST", f"/{INDEX}/_search") in calls
    assert documents(deployed) == set(DISTRACTORS)


def test_red_domain_fails_first_and_skips_the_rest(deployed: Deployed, capsys) -> None:
    deployed.domain.health_status = "red"
    code, lines = run(deployed, capsys)
    assert code == 1
    assert lines[-1] == "SMOKE FAILED: domain health: domain health is red (1 unassigned shards)"
    assert statuses(lines) == {"domain health": "FAIL", "model deployed": "SKIP",
                               "query vs passage": "SKIP", "neural search": "SKIP"}  # fmt: skip
    assert documents(deployed) == set(DISTRACTORS)


def test_yellow_domain_is_healthy_enough(deployed: Deployed, capsys) -> None:
    deployed.domain.health_status = "yellow"
    code, lines = run(deployed, capsys)
    assert code == 0, lines
    assert "status yellow" in lines[0]


def test_undeployed_model_fails(deployed: Deployed, capsys) -> None:
    undeploy(deployed.domain, deployed.model_id)
    code, lines = run(deployed, capsys)
    assert code == 1
    assert lines[-1] == (
        f"SMOKE FAILED: model deployed: model {deployed.model_id} is UNDEPLOYED, not DEPLOYED"
    )
    assert statuses(lines)["neural search"] == "SKIP"


def test_endpoint_ignoring_content_type_fails_on_identical_vectors(deployed, capsys) -> None:
    # An endpoint that embeds every text as a passage: no query prefix ever.
    deployed.domain.embedder = lambda texts, _kind, model: hashing_embedder(texts, "passage", model)
    code, lines = run(deployed, capsys)
    assert code == 1
    assert lines[-1].startswith(
        "SMOKE FAILED: query vs passage: query and passage vectors of the same sentence are "
        "identical"
    )


def test_wrong_dimension_fails(deployed: Deployed, capsys) -> None:
    code, lines = run(deployed, capsys, "--dimension", "768")
    assert code == 1
    assert lines[-1] == (
        "SMOKE FAILED: query vs passage: query vector has 384 dimensions, expected 768"
    )


def test_document_not_found_fails_and_is_still_deleted(deployed: Deployed, capsys) -> None:
    deployed.domain.drop_embeddings = True  # ingest stores the text but embeds nothing
    code, lines = run(deployed, capsys)
    assert code == 1
    assert re.fullmatch(
        r"SMOKE FAILED: neural search: test document smoke-[0-9a-f]{32} not found as top hit "
        r"\(not in the top 5; top hit is faq-\d\)",
        lines[-1],
    ), lines[-1]
    assert statuses(lines)["cleanup"] == "PASS"
    assert documents(deployed) == set(DISTRACTORS)


def test_document_is_deleted_when_the_search_itself_errors(deployed: Deployed, capsys) -> None:
    deployed.domain.faults.unavailable(1, path_prefix=f"/{INDEX}/_search")
    code, lines = run(deployed, capsys)
    assert code == 1
    assert (
        lines[-1]
        == "SMOKE FAILED: neural search: neural query failed: HTTP 503: Service Unavailable"
    )
    assert statuses(lines)["cleanup"] == "PASS"
    assert documents(deployed) == set(DISTRACTORS)
    assert deployed.domain.faults.pending() == 0


def test_the_search_client_identity_passes_every_check(deployed: Deployed, capsys) -> None:
    """What the pipeline runs as: the least-privilege client role, through the alias."""
    before = len(deployed.domain.calls())
    code, lines = run(deployed, capsys, who=CLIENT)
    assert code == 0, lines
    assert set(statuses(lines).values()) == {"PASS"} and len(statuses(lines)) == 5
    calls = deployed.domain.calls()[before:]
    assert calls and {principal for principal, *_ in calls} == {CLIENT.arn}
    assert all(status < 400 for *_, status in calls), calls
    written = [p for _, m, p, _ in calls if m == "PUT" and "/_doc/" in p]
    assert len(written) == 1 and written[0].startswith(f"/{INDEX}/_doc/smoke-")  # the alias
    assert documents(deployed) == set(DISTRACTORS)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", f"/{INDEX}-new", {"settings": {"index": {"knn": True}}}),
        ("DELETE", f"/{CONCRETE_INDEX}", None),
        ("PUT", f"/{CONCRETE_INDEX}/_settings", {"index": {"number_of_replicas": 3}}),
        ("POST", "/_plugins/_ml/models/{model}/_undeploy", None),
        ("DELETE", "/_plugins/_ml/models/{model}", None),
        ("GET", "/_plugins/_security/api/rolesmapping/all_access", None),
        ("PUT", "/_plugins/_security/api/rolesmapping/all_access", {"backend_roles": ["x"]}),
        ("PUT", "/elsewhere/_doc/1", {FIELD: "not our index"}),
    ],
)
def test_master_only_operations_are_refused_to_the_client(
    method: str, path: str, body: object, deployed: Deployed
) -> None:
    reply = client_for(deployed.domain, CLIENT).request(
        method, path.replace("{model}", deployed.model_id), body
    )
    assert reply.status == 403, (reply.status, reply.body)
    assert deployed.domain.models[deployed.model_id]["model_state"] == "DEPLOYED"
    assert CONCRETE_INDEX in deployed.domain.indices
    assert deployed.domain.role_mappings["all_access"]["backend_roles"] == []


def test_identity_without_a_role_mapping_is_refused(deployed: Deployed, capsys) -> None:
    """Why the pipeline signs as the client role: an unmapped identity gets nothing."""
    code, lines = run(deployed, capsys, who=SMOKE_ONLY)
    assert code == 1
    assert lines[-1].startswith(
        "SMOKE FAILED: domain health: GET /_cluster/health failed: HTTP 403: no permissions for "
        "[cluster:monitor/health]"
    )


def test_json_output_for_machines(deployed: Deployed, capsys) -> None:
    undeploy(deployed.domain, deployed.model_id)
    code, lines = run(deployed, capsys, "--json")
    assert code == 1 and len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["ok"] is False
    assert doc["reason"] == f"model deployed: model {deployed.model_id} is UNDEPLOYED, not DEPLOYED"
    assert [(c["name"], c["status"]) for c in doc["checks"]] == [
        ("domain health", "PASS"), ("model deployed", "FAIL"),
        ("query vs passage", "SKIP"), ("neural search", "SKIP"),
    ]  # fmt: skip
    assert doc["target"]["field"] == FIELD and doc["target"]["dimension"] == 384


def test_unreachable_domain_fails_with_a_reason(capsys) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = smoke.main(
        ["--endpoint", f"http://127.0.0.1:{port}", "--model-id", "m", "--index", "i",
         "--region", REGION, "--timeout", "2"],
        session_factory=lambda: boto3.Session(aws_access_key_id="FAKE", aws_secret_access_key="s",
                                              region_name=REGION),
    )  # fmt: skip
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 1
    assert last.startswith("SMOKE FAILED: domain health: domain did not answer (")


def test_plain_http_to_a_real_host_is_refused(capsys) -> None:
    code = smoke.main(
        ["--endpoint", "http://search-x.us-east-1.es.amazonaws.com", "--model-id", "m",
         "--index", "i", "--region", REGION],
        session_factory=lambda: boto3.Session(aws_access_key_id="FAKE", aws_secret_access_key="s",
                                              region_name=REGION),
    )  # fmt: skip
    assert code == 2
    assert capsys.readouterr().out.strip() == (
        "smoke test could not start: refusing plain HTTP to "
        "search-x.us-east-1.es.amazonaws.com: use https"
    )


def test_answer_of_the_wrong_shape_is_a_failed_check_not_a_crash(deployed, capsys) -> None:
    deployed.domain.faults.add(1, 200, "<html>proxy</html>", path_prefix="/_cluster/health")
    code, lines = run(deployed, capsys)
    assert code == 1
    assert lines[-1].startswith("SMOKE FAILED: domain health: unexpected answer (AttributeError")


def test_hybrid_search_through_the_deployed_pipeline_passes_as_the_client(
    deployed: Deployed, capsys
) -> None:
    code, lines = run(deployed, capsys, "--search-pipeline", PIPELINE, who=CLIENT)
    assert code == 0, lines
    assert statuses(lines)["hybrid search"] == "PASS"
    (line,) = [line for line in lines if "hybrid search" in line]
    assert f"top hit through {PIPELINE}" in line
    assert documents(deployed) == set(DISTRACTORS)


def test_a_missing_pipeline_fails_the_hybrid_check_and_the_document_is_still_deleted(
    deployed: Deployed, capsys
) -> None:
    code, lines = run(deployed, capsys, "--search-pipeline", "documents-gone")
    assert code == 1
    assert statuses(lines)["hybrid search"] == "FAIL"
    assert "pipeline documents-gone failed" in lines[-1]
    assert statuses(lines)["cleanup"] == "PASS"
    assert documents(deployed) == set(DISTRACTORS)


def test_without_a_pipeline_there_is_no_hybrid_check(deployed: Deployed, capsys) -> None:
    code, lines = run(deployed, capsys)
    assert code == 0 and "hybrid search" not in statuses(lines)

"""The bulk loader against the emulated domain: every input record ends indexed or in the
dead-letter file (never both, never neither), under throttling, outages, lost answers,
relayed SageMaker failures and malformed input, and a resumed run loses and duplicates nothing."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.opensearch_emulator import Principal
from tests.tools.conftest import (
    CLIENT,
    CONCRETE_INDEX,
    DISTRACTORS,
    FIELD,
    INDEX,
    MASTER,
    REGION,
    SMOKE_ONLY,
    Deployed,
)
from tools.ingest import cli

REPO = Path(__file__).resolve().parents[2]
FAST = ["--backoff-base", "0.005", "--backoff-cap", "0.05", "--seed", "7"]
BULK = f"/{INDEX}/_bulk"


def session_of(who: Principal):  # type: ignore[no-untyped-def]
    return lambda: boto3.Session(
        aws_access_key_id=who.access_key,
        aws_secret_access_key=who.secret_key,
        aws_session_token=who.session_token,
        region_name=REGION,
    )


def ingest(
    deployed: Deployed,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    who: Principal = CLIENT,
    **kwargs: Any,
) -> tuple[int, dict[str, Any]]:
    code = cli.main(
        ["--endpoint", deployed.domain.endpoint, "--index", INDEX, "--field", FIELD,
         "--dead-letters", str(tmp_path / "dead.jsonl"), "--json", "--no-progress",
         *FAST, *args],
        session_factory=session_of(who), **kwargs,
    )  # fmt: skip
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def write_jsonl(path: Path, count: int, *, start: int = 0, bad: dict[int, str] | None = None):
    """``count`` documents d<start>..; ``bad`` replaces line n (1-based) with a broken one."""
    bad = bad or {}
    with path.open("w") as handle:
        for n in range(1, count + 1):
            i = start + n - 1
            record = {"id": f"d{i}", "text": f"passage {i} about the river ferry number {i % 97}"}
            handle.write(bad.get(n, json.dumps(record)) + "\n")
    return path


def indexed(deployed: Deployed) -> dict[str, dict[str, Any]]:
    with deployed.domain.lock:  # a load may be writing from the server's threads
        docs = dict(deployed.domain.indices[CONCRETE_INDEX].docs)
    return {k: v for k, v in docs.items() if k not in DISTRACTORS}


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_accounted(deployed: Deployed, tmp_path: Path, ids: set[str], malformed: int) -> None:
    """Every id indexed (with its embedding) or dead-lettered, never both, never neither."""
    docs = indexed(deployed)
    letters = dead_letters(tmp_path)
    dead_ids = [e["id"] for e in letters if "id" in e]
    assert len(dead_ids) == len(set(dead_ids)), "a document is dead-lettered twice"
    assert not set(docs) & set(dead_ids), "indexed and dead-lettered"
    assert set(docs) | set(dead_ids) == ids, "lost documents"
    assert sum("raw" in e for e in letters) == malformed
    for doc_id, source in docs.items():
        assert source[f"{FIELD}_semantic_info"]["embedding"], f"{doc_id} not embedded"
    assert not deployed.domain.violations, deployed.domain.violations


def test_loads_a_file_with_each_document_embedded(deployed, tmp_path, capsys) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", 250)
    code, summary = ingest(deployed, tmp_path, capsys, str(source), "--batch-size", "40")
    assert code == 0, summary
    assert summary["indexed"] == 250 and summary["failed"] == 0
    assert set(indexed(deployed)) == {f"d{i}" for i in range(250)}
    assert indexed(deployed)["d7"][FIELD] == "passage 7 about the river ferry number 7"
    # The invocation estimate is what the emulated semantic processor really did:
    # one predict per semantic_ingest_batch_size (10) documents of each bulk request.
    assert summary["endpoint_invocations_estimate"] == deployed.domain.bulk_predict_calls == 25
    assert not (tmp_path / "dead.jsonl").exists()
    # It signed as the search-client role only.
    assert {c[0] for c in deployed.domain.calls() if c[2] == BULK} == {CLIENT.arn}


def test_csv_parquet_and_stdin_with_chosen_fields(deployed, tmp_path, capsys, monkeypatch) -> None:
    with (tmp_path / "a.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["doc_id", "body", "lang"])
        writer.writerows([["c1", "first, with a comma", "en"], ["c2", "second\nline", "en"]])
        writer.writerow(["c3", "too", "many", "fields"])
    table = pa.table({"doc_id": ["p1", "p2", None], "body": ["parquet one", "parquet two", "x"]})
    pq.write_table(table, tmp_path / "b.parquet")
    code, summary = ingest(deployed, tmp_path, capsys, str(tmp_path / "a.csv"),
                           str(tmp_path / "b.parquet"), "--text-field", "body",
                           "--id-field", "doc_id", "--keep", "lang")  # fmt: skip
    assert code == 1, summary  # two malformed records
    assert set(indexed(deployed)) == {"c1", "c2", "p1", "p2"}
    assert indexed(deployed)["c2"] == {**indexed(deployed)["c2"], FIELD: "second\nline",
                                       "lang": "en"}  # fmt: skip
    reasons = {e["origin"]: e["reason"] for e in dead_letters(tmp_path)}
    assert reasons == {
        f"{tmp_path / 'a.csv'}:5": "4 fields, the header has 3",
        f"{tmp_path / 'b.parquet'}:row 3": "id field 'doc_id' is missing",
    }
    (tmp_path / "dead.jsonl").unlink()
    stdin = "".join(
        json.dumps({"key": f"s{i}", "text": f"from stdin {i}"}) + "\n" for i in range(5)
    )
    monkeypatch.setattr(sys, "stdin", _Stdin(stdin.encode()))
    code, summary = ingest(deployed, tmp_path, capsys, "-", "--id-field", "key")
    assert code == 0 and summary["indexed"] == 5
    assert {f"s{i}" for i in range(5)} <= set(indexed(deployed))


class _Stdin:
    def __init__(self, data: bytes) -> None:
        import io

        self.buffer = io.BytesIO(data)


def test_malformed_lines_are_named_by_file_and_line_and_the_run_goes_on(
    deployed, tmp_path, capsys
) -> None:
    bad = {3: "{not json", 10: json.dumps({"id": "d9"}), 11: json.dumps(["a", "list"]),
           12: json.dumps({"text": "no id"}),
           13: json.dumps({"id": "d12", "text": " "})}  # fmt: skip
    source = write_jsonl(tmp_path / "docs.jsonl", 30, bad=bad)
    code, summary = ingest(deployed, tmp_path, capsys, str(source))
    assert code == 1
    assert summary["indexed"] == 25 and summary["failed"] == 5 and summary["malformed"] == 5
    reasons = {e["origin"]: e["reason"] for e in dead_letters(tmp_path)}
    assert set(reasons) == {f"{source}:{n}" for n in bad}
    assert reasons[f"{source}:3"].startswith("not JSON")
    assert reasons[f"{source}:10"] == "text field 'text' is missing"
    assert reasons[f"{source}:11"] == "a record must be an object, not list"
    assert reasons[f"{source}:12"] == "id field 'id' is missing"
    assert reasons[f"{source}:13"] == "text field 'text' is empty"
    good = {f"d{n - 1}" for n in range(1, 31) if n not in bad}
    assert set(indexed(deployed)) == good


def test_faults_leave_every_document_indexed_or_dead_lettered(deployed, tmp_path, capsys) -> None:
    """429 and 503 bursts at the front end, dropped connections (some after the write
    happened), relayed SageMaker 429/503/424 per item, write-queue rejections, and two
    documents the endpoint always refuses."""
    domain = deployed.domain
    source = write_jsonl(tmp_path / "docs.jsonl", 1500, bad={77: "{oops"})
    ids = {f"d{i}" for i in range(1500)} - {"d76"}
    domain.faults.throttle(6, path_prefix=BULK)
    domain.faults.add(2, 0, None, path_prefix=BULK, drop_connection=True, after_processing=True)
    domain.faults.unavailable(4, path_prefix=BULK)
    domain.faults.drop_connections(2, path_prefix=BULK)
    domain.fail_embeddings(8, 429)
    domain.fail_embeddings(5, 503)
    domain.fail_embeddings(3, 424)
    domain.bulk_rejections = 30
    domain.bulk_poison_docs = {"d100", "d1200"}
    code, summary = ingest(deployed, tmp_path, capsys, str(source), "--concurrency", "4")
    assert domain.faults.pending() == 0 and not domain.bulk_embed_failures
    assert code == 1, summary
    assert_accounted(deployed, tmp_path, ids, malformed=1)
    dead = {e["id"]: e for e in dead_letters(tmp_path) if "id" in e}
    # Only the poison documents are dead: their neighbours were retried apart from them.
    assert set(dead) == {"d100", "d1200"}
    assert dead["d100"]["reason"].startswith("424 status_exception: Error from remote service")
    assert dead["d100"]["attempts"] == 8 and dead["d100"]["source"] == {
        FIELD: dead["d100"]["source"][FIELD]
    }
    assert summary["indexed"] + summary["failed"] == 1500
    assert summary["throttled_answers"] > 0 and summary["retries"] > 0


def test_back_pressure_halves_the_pace_and_grows_it_back() -> None:
    from tools.ingest.pace import Backoff, Pace

    now = [0.0]
    pace = Pace(max_concurrency=8, max_batch=200, min_batch=20,
                backoff=Backoff(1.0, 8.0, random.Random(1)), clock=lambda: now[0])  # fmt: skip
    window = pace.window
    pace.throttled(window)
    pace.throttled(window)  # an answer to a request sent before the decrease: no second cut
    assert (pace.concurrency, pace.batch_size) == (4, 100)
    assert 0 < pace.paused() <= 2.0  # second consecutive throttle: delay in [1, 2]
    pace.throttled(pace.window)
    assert (pace.concurrency, pace.batch_size) == (2, 50)
    for _ in range(4):
        pace.clean()
    assert (pace.concurrency, pace.batch_size) == (4, 77)  # 50 -> 62 -> 77
    for _ in range(40):
        pace.clean()
    assert (pace.concurrency, pace.batch_size) == (8, 200)
    for _ in range(6):
        pace.throttled(pace.window)
    assert (pace.concurrency, pace.batch_size) == (1, 20)  # floors
    backoff = Backoff(0.5, 4.0, random.Random(3))
    delays = [backoff.delay(n) for n in range(1, 12) for _ in range(20)]
    assert min(delays) >= 0.25 and max(delays) <= 4.0
    assert len({round(d, 6) for d in delays}) > 100  # jittered


def test_resume_after_an_exception_at_a_random_batch(deployed, tmp_path, capsys) -> None:
    rng = random.Random(11)
    source = write_jsonl(tmp_path / "docs.jsonl", 800, bad={5: "nope"})
    ids = {f"d{i}" for i in range(800)} - {"d4"}
    deployed.domain.bulk_poison_docs = {"d300"}
    deployed.domain.fail_embeddings(4, 503)
    crash_at = rng.randint(3, 12)

    def crash(number: int) -> None:
        if number == crash_at:
            raise RuntimeError("injected crash")

    with pytest.raises(RuntimeError, match="injected crash"):
        cli.main(["--endpoint", deployed.domain.endpoint, "--index", INDEX, "--field", FIELD,
                  "--dead-letters", str(tmp_path / "dead.jsonl"), "--json", "--no-progress",
                  "--batch-size", "50", *FAST, str(source)],
                 session_factory=session_of(CLIENT), before_send=crash)  # fmt: skip
    capsys.readouterr()
    before = set(indexed(deployed))
    assert 0 < len(before) < len(ids)
    code, summary = ingest(deployed, tmp_path, capsys, str(source), "--resume")
    assert code == 1, summary
    assert_accounted(deployed, tmp_path, ids, malformed=1)
    assert summary["skipped_already_indexed"] == len(before)
    assert summary["indexed"] + summary["skipped_already_indexed"] + summary["failed"] >= 800


def test_resume_after_a_kill_loses_and_duplicates_nothing(deployed, tmp_path, capsys) -> None:
    """A real process killed at a random moment of its load, then ``--resume``."""
    domain = deployed.domain
    source = write_jsonl(tmp_path / "docs.jsonl", 3000, bad={1000: "{cut"})
    ids = {f"d{i}" for i in range(3000)} - {"d999"}
    domain.bulk_poison_docs = {"d42"}
    domain.fail_embeddings(6, 429)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": CLIENT.access_key,
           "AWS_SECRET_ACCESS_KEY": CLIENT.secret_key, "AWS_SESSION_TOKEN": CLIENT.session_token,
           "AWS_DEFAULT_REGION": REGION, "PYTHONPATH": str(REPO)}  # fmt: skip
    env.pop("AWS_PROFILE", None)
    dead = tmp_path / "dead.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.ingest", "--endpoint", domain.endpoint, "--index", INDEX,
         "--field", FIELD, "--dead-letters", str(dead), "--no-progress", "--batch-size", "50",
         "--concurrency", "2", *FAST, str(source)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    kill_after = random.Random(5).randint(300, 2000)
    deadline = time.monotonic() + 120
    while len(indexed(deployed)) < kill_after and process.poll() is None:
        assert time.monotonic() < deadline, "the load did not progress"
        time.sleep(0.01)
    process.kill()
    process.wait()
    # The emulator may still be serving the killed process's last bulk request in a
    # server thread: wait until the index stops changing before taking the snapshot.
    settled, seen = time.monotonic(), len(indexed(deployed))
    while time.monotonic() - settled < 0.5:
        time.sleep(0.05)
        if len(indexed(deployed)) != seen:
            settled, seen = time.monotonic(), len(indexed(deployed))
    before = set(indexed(deployed))
    assert len(before) < len(ids), "the process finished before the kill: no test"
    assert not dead.exists()  # a killed run leaves only its .partial
    sent_before = Counter(domain.bulk_sent_ids)
    code, summary = ingest(deployed, tmp_path, capsys, str(source), "--resume")
    assert code == 1, summary
    assert_accounted(deployed, tmp_path, ids, malformed=1)
    # Nothing already indexed was sent again, and the counts add up to the file.
    sent_after = Counter(domain.bulk_sent_ids) - sent_before
    assert not set(sent_after) & before
    assert summary["skipped_already_indexed"] == len(before)
    assert summary["indexed"] + summary["skipped_already_indexed"] + summary["failed"] == 3000


def test_acceptance_ten_thousand_documents_with_faults(deployed, tmp_path, capsys) -> None:
    domain = deployed.domain
    source = write_jsonl(tmp_path / "corpus.jsonl", 10_000)
    domain.faults.throttle(10, path_prefix=BULK)
    domain.faults.unavailable(5, path_prefix=BULK)
    domain.faults.add(3, 0, None, path_prefix=BULK, drop_connection=True, after_processing=True)
    domain.fail_embeddings(20, 429)
    domain.fail_embeddings(10, 503)
    domain.fail_embeddings(5, 424)
    domain.bulk_rejections = 50
    code, summary = ingest(deployed, tmp_path, capsys, str(source))
    lines = sum(1 for _ in source.open())
    assert code == 0, summary
    assert summary["indexed"] + summary["failed"] == lines == 10_000
    assert summary["indexed"] == 10_000
    assert_accounted(deployed, tmp_path, {f"d{i}" for i in range(10_000)}, malformed=0)


def test_an_identity_the_domain_refuses_stops_in_one_line(deployed, tmp_path, capsys) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", 20)
    code, summary = ingest(deployed, tmp_path, capsys, str(source), who=SMOKE_ONLY)
    assert code == 2
    assert summary["stopped"].startswith(
        "the domain refused a bulk request: 403 security_exception"
    )
    assert "\n" not in summary["stopped"] and len(summary["stopped"]) <= 400
    assert summary["indexed"] == 0 and not indexed(deployed)
    # What was attempted is a dead letter (resume retries it); nothing was lost silently.
    assert {e["id"] for e in dead_letters_partial(tmp_path)} == {f"d{i}" for i in range(20)}


def dead_letters_partial(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead.jsonl.partial"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_existing_dead_letter_file_needs_resume(deployed, tmp_path, capsys) -> None:
    (tmp_path / "dead.jsonl").write_text("{}\n")
    source = write_jsonl(tmp_path / "docs.jsonl", 3)
    code = cli.main(["--endpoint", deployed.domain.endpoint, "--index", INDEX,
                     "--dead-letters", str(tmp_path / "dead.jsonl"), str(source)],
                    session_factory=session_of(CLIENT))  # fmt: skip
    out = capsys.readouterr().out.strip()
    assert code == 2 and "\n" not in out
    assert "exists: pass --resume to retry it" in out
    assert not indexed(deployed)


def test_resume_retries_dead_letters_once_the_cause_is_gone(deployed, tmp_path, capsys) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", 60)
    deployed.domain.bulk_poison_docs = {"d3", "d40"}
    code, summary = ingest(deployed, tmp_path, capsys, str(source))
    assert code == 1 and {e["id"] for e in dead_letters(tmp_path)} == {"d3", "d40"}
    deployed.domain.bulk_poison_docs = set()  # the endpoint was fixed
    # Resume without the input: the dead letters carry their own source.
    code, summary = ingest(deployed, tmp_path, capsys, str(write_jsonl(tmp_path / "e.jsonl", 0)),
                           "--resume")  # fmt: skip
    assert code == 0, summary
    assert summary["indexed"] == 2
    assert not (tmp_path / "dead.jsonl").exists()
    assert set(indexed(deployed)) == {f"d{i}" for i in range(60)}


def test_master_credentials_are_never_needed(deployed, tmp_path, capsys) -> None:
    """The client role's mapping (as the ML setup writes it) is enough for a load with --resume."""
    source = write_jsonl(tmp_path / "docs.jsonl", 30)
    code, summary = ingest(deployed, tmp_path, capsys, str(source), "--resume")
    assert code == 0 and summary["indexed"] == 30
    loader_calls = [c for c in deployed.domain.calls() if c[2] in (BULK, f"/{INDEX}/_search")]
    assert loader_calls and all(c[0] == CLIENT.arn and c[3] == 200 for c in loader_calls)
    assert MASTER.arn not in {c[0] for c in loader_calls}


def test_emulated_bulk_fails_a_whole_semantic_sub_batch_with_the_relayed_status(
    deployed,
) -> None:
    """The emulator's rule the loader is built on (sources in its _bulk section): one failed
    predict fails every document of its sub-batch of semantic_ingest_batch_size (10), with
    the endpoint's status and type status_exception; the other sub-batches are written."""
    from botocore.credentials import Credentials

    from tools.opensearch import connect

    credentials = Credentials(CLIENT.access_key, CLIENT.secret_key, CLIENT.session_token)
    client = connect(deployed.domain.endpoint, REGION, credentials)
    deployed.domain.fail_embeddings(1, 503)
    body = "".join(json.dumps({"index": {"_id": f"b{i}"}}) + "\n" + json.dumps({FIELD: f"t {i}"})
                   + "\n" for i in range(25))  # fmt: skip
    reply = client.bulk(body=body, index=INDEX)
    assert reply["errors"] is True
    statuses = [item["index"]["status"] for item in reply["items"]]
    assert statuses == [503] * 10 + [201] * 15
    error = reply["items"][0]["index"]["error"]
    assert error["type"] == "status_exception"
    assert error["reason"].startswith("Error from remote service: ")
    assert deployed.domain.bulk_predict_calls == 3
    assert set(indexed(deployed)) == {f"b{i}" for i in range(10, 25)}
    assert not deployed.domain.violations


def test_ids_from_content(deployed, tmp_path, capsys) -> None:
    source = tmp_path / "t.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["one", "two", "one"]))
    code, summary = ingest(deployed, tmp_path, capsys, str(source), "--ids-from-content")
    assert code == 0 and summary["indexed"] == 3  # acknowledged three times
    assert len(indexed(deployed)) == 2  # identical texts are one document

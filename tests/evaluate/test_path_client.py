"""Retry, backoff and body rules of ``tools.opensearch.SignedHttpClient`` (the path client
the smoke test, the evaluation and the migration use, on opensearch-py).

Here, not in tests/tools/, because the retries exist for the evaluation's long
ingests (tests/tools/ covers the smoke test, which keeps one attempt per call).

Most tests talk to a scripted local HTTP server, so each answer (a status, a
connection cut before or during the body, a reply slower than the client's
timeout) can be chosen per attempt and every attempt is counted; two go
through the OpenSearch emulator's fault injection to show the retried
requests are signed well enough for a SigV4-checking server.
"""

from __future__ import annotations

import json
import random
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3
from botocore.credentials import ReadOnlyCredentials

from tests.evaluate.search_emulator import SearchEmulator
from tests.support.opensearch_emulator import Principal
from tools.opensearch import SignedHttpClient, StatusError, TransportError

REGION = "eu-west-1"
CREDS = ReadOnlyCredentials("FAKEKEYTESTTESTTEST", "secret", None)

# A script step: an HTTP status (with a JSON error body), or one of these faults.
DROP = "drop"  # close the connection without answering
CUT = "cut"  # announce a body, send part of it, close
SLOW = "slow"  # answer only after the client has timed out


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    content_types: list[str] = field(default_factory=list)  # every Content-Type header sent


@dataclass
class Scripted:
    """A local server answering each request with the next step of ``script`` (then 200)."""

    script: list[int | str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""


@pytest.fixture
def server() -> Iterator[Scripted]:
    state = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            # Header names lower-cased: HTTP treats them case-insensitively.
            headers = {k.lower(): v for k, v in self.headers.items()}
            content_types = self.headers.get_all("Content-Type") or []
            state.seen.append(Seen(self.command, self.path, body, headers, content_types))
            step = state.script.pop(0) if state.script else 200
            if step == DROP:
                self.close_connection = True
                return
            if step == SLOW:
                state.release.wait(5)  # the client gave up long before; teardown releases us
                step = 200
            if step == CUT:
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b'{"partial":')
                self.close_connection = True
                return
            assert isinstance(step, int)
            if step < 300:
                payload = json.dumps({"attempt": len(state.seen)}).encode()
            else:
                payload = json.dumps(
                    {"error": {"type": f"e{step}", "reason": f"scripted {step}"}}
                ).encode()
            self.send_response(step)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    # A short poll interval: shutdown() waits up to one interval, once per test.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()


@dataclass
class Recorder:
    """Stands in for time.sleep and for the credential provider, counting both."""

    sleeps: list[float] = field(default_factory=list)
    credential_reads: int = 0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def credentials(self) -> ReadOnlyCredentials:
        self.credential_reads += 1
        return CREDS


def client(server: Scripted, rec: Recorder, **kwargs: Any) -> SignedHttpClient:
    kwargs.setdefault("max_retries", 4)
    kwargs.setdefault("timeout", 5.0)
    return SignedHttpClient(server.url, REGION, rec.credentials, sleep=rec.sleep, **kwargs)


# -- what is retried


def test_429_is_retried_even_for_a_post_resending_the_same_signed_bytes(server) -> None:
    rec = Recorder()
    server.script = [429, 429]
    c = client(server, rec)
    response = c.request("POST", "/idx/_doc", {"n": 1}, {"refresh": "true"})
    assert (response.status, response.body) == (200, {"attempt": 3})
    assert [s.path for s in server.seen] == ["/idx/_doc?refresh=true"] * 3
    assert {s.body for s in server.seen} == {b'{"n": 1}'}
    # Signed afresh for every attempt, with credentials read again each time.
    assert all(s.headers["authorization"].startswith("AWS4-HMAC-SHA256 ") for s in server.seen)
    assert rec.credential_reads == 3
    assert len(rec.sleeps) == 2 and c.retries_done == 2


@pytest.mark.parametrize("status", [502, 503, 504])
def test_unavailable_is_retried_for_idempotent_methods(server, status: int) -> None:
    rec = Recorder()
    server.script = [status, status]
    response = client(server, rec).request("GET", "/_cluster/health")
    assert response.status == 200
    assert len(server.seen) == 3 and len(rec.sleeps) == 2


@pytest.mark.parametrize("status", [500, 400, 403, 404])
def test_other_errors_are_answers_not_retried(server, status: int) -> None:
    rec = Recorder()
    server.script = [status]
    response = client(server, rec).request("GET", "/x")
    assert response.status == status and not response.ok
    assert response.reason() == f"HTTP {status}: scripted {status}"
    assert len(server.seen) == 1 and rec.sleeps == []


def test_unavailable_post_is_not_retried_unless_the_caller_says_it_is_idempotent(server) -> None:
    rec = Recorder()
    server.script = [503, 503]
    c = client(server, rec)
    assert c.request("POST", "/_plugins/_ml/models/_register", {"name": "m"}).status == 503
    assert len(server.seen) == 1 and rec.sleeps == []
    assert c.request("POST", "/idx/_search", {}, idempotent=True).status == 200
    assert len(server.seen) == 3 and len(rec.sleeps) == 1


def test_a_caller_can_forbid_retrying_an_idempotent_method(server) -> None:
    rec = Recorder()
    server.script = [503, DROP]
    c = client(server, rec)
    assert c.request("PUT", "/idx", {}, idempotent=False).status == 503
    with pytest.raises(TransportError):
        c.request("DELETE", "/idx", idempotent=False)
    assert len(server.seen) == 2 and rec.sleeps == []


@pytest.mark.parametrize("fault", [DROP, CUT])
def test_a_dropped_connection_is_retried_for_idempotent_requests(server, fault: str) -> None:
    rec = Recorder()
    server.script = [fault, fault]
    assert client(server, rec).request("GET", "/idx/_count").body == {"attempt": 3}
    assert len(rec.sleeps) == 2


@pytest.mark.parametrize("fault", [DROP, CUT])
def test_a_dropped_connection_fails_a_post_at_once(server, fault: str) -> None:
    rec = Recorder()
    server.script = [fault]
    with pytest.raises(TransportError, match=r"^http://127\.0\.0\.1:\d+: "):
        client(server, rec).request("POST", "/_plugins/_ml/connectors/_create", {})
    assert len(server.seen) == 1 and rec.sleeps == []


def test_a_timeout_is_retried(server) -> None:
    rec = Recorder()
    server.script = [SLOW]
    c = client(server, rec, timeout=0.3)
    assert c.request("GET", "/idx").status == 200
    assert len(server.seen) == 2 and len(rec.sleeps) == 1


def test_a_certificate_that_does_not_verify_is_not_retried(server, monkeypatch) -> None:
    """Retrying cannot fix it, and must never wear it down: one attempt, a clear error."""
    calls: list[str] = []

    def untrusted(pool: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        # What urllib3 raises when the server's certificate does not verify.
        calls.append(url)
        raise urllib3.exceptions.SSLError(ssl.SSLCertVerificationError("certificate verify failed"))

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", untrusted)
    rec = Recorder()
    with pytest.raises(TransportError, match="certificate verify failed") as caught:
        client(server, rec).request("GET", "/")
    assert not caught.value.retryable
    assert len(calls) == 1 and rec.sleeps == []


# -- the bound and the backoff


def test_retries_are_bounded_and_the_last_answer_is_returned(server) -> None:
    rec = Recorder()
    server.script = [503] * 10
    c = client(server, rec, max_retries=3)
    response = c.request("GET", "/idx")
    assert response.status == 503 and response.body["error"]["type"] == "e503"
    assert len(server.seen) == 4 and len(rec.sleeps) == 3 and c.retries_done == 3


def test_transport_retries_are_bounded_then_raise(server) -> None:
    rec = Recorder()
    server.script = [DROP] * 10
    with pytest.raises(TransportError):
        client(server, rec, max_retries=2).request("GET", "/idx")
    assert len(server.seen) == 3 and len(rec.sleeps) == 2


def test_by_default_there_is_one_attempt_as_the_smoke_test_wants(server) -> None:
    rec = Recorder()
    server.script = [429, 503]
    c = SignedHttpClient(server.url, REGION, rec.credentials, sleep=rec.sleep)
    assert c.request("POST", "/a", {}).status == 429
    assert c.request("GET", "/b").status == 503
    assert len(server.seen) == 2 and rec.sleeps == [] and c.retries_done == 0


def test_backoff_doubles_with_jitter_and_is_capped(server) -> None:
    rec = Recorder()
    server.script = [429] * 6
    c = client(server, rec, max_retries=6, backoff_base=1.0, backoff_cap=4.0, rng=random.Random(7))
    assert c.request("GET", "/idx").status == 200
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert len(rec.sleeps) == len(ceilings)
    for slept, ceiling in zip(rec.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= slept <= ceiling
    assert len(set(rec.sleeps)) == len(rec.sleeps)  # jittered, not a fixed schedule


def test_a_negative_retry_bound_is_refused(server) -> None:
    with pytest.raises(ValueError, match="max_retries"):
        client(server, Recorder(), max_retries=-1)


# -- bodies and ok()


def test_ndjson_bodies_for_bulk(server) -> None:
    rec = Recorder()
    lines = [{"index": {"_id": "d1"}}, {"text": "one"}, {"index": {"_id": "d2"}}, {"text": "two"}]
    client(server, rec).request("POST", "/idx/_bulk", ndjson=iter(lines), idempotent=True)
    seen = server.seen[0]
    # One Content-Type: ours replaces opensearch-py's default application/json.
    assert seen.content_types == ["application/x-ndjson"]
    assert seen.body.endswith(b"\n")  # OpenSearch refuses a bulk body without it
    assert [json.loads(line) for line in seen.body.decode().splitlines()] == lines
    with pytest.raises(ValueError, match="either body or ndjson"):
        client(server, rec).request("POST", "/idx/_bulk", {"a": 1}, ndjson=lines)


def test_ok_returns_the_body_or_raises_naming_the_call(server) -> None:
    rec = Recorder()
    server.script = [200, 400]
    c = client(server, rec)
    assert c.ok("GET", "/idx") == {"attempt": 1}
    with pytest.raises(StatusError, match=r"^PUT /idx: HTTP 400: e400: scripted 400$") as caught:
        c.ok("PUT", "/idx", {"settings": {}})
    assert caught.value.response.status == 400


# -- through the SigV4-checking emulator

MASTER = Principal("arn:aws:iam::111122223333:role/http-admin", "FAKEKEYHTTPADMIN", "secret-http")


@pytest.fixture(scope="module")
def emulator() -> Iterator[SearchEmulator]:
    emu = SearchEmulator(master=MASTER, principals=[], region=REGION)
    with emu:
        yield emu


def test_retried_requests_pass_the_emulators_signature_check(emulator) -> None:
    rec = Recorder()
    c = SignedHttpClient(
        emulator.endpoint, REGION, lambda: MASTER.credentials, max_retries=5, sleep=rec.sleep
    )
    emulator.faults.drop_connections(1, path_prefix="/_cluster")
    emulator.faults.unavailable(1, path_prefix="/_cluster")
    emulator.faults.throttle(1, path_prefix="/_cluster")
    assert c.ok("GET", "/_cluster/health")["status"] in ("green", "yellow")
    assert emulator.faults.pending() == 0 and len(rec.sleeps) == 3
    assert emulator.violations == []


def test_a_post_whose_connection_dropped_is_not_resent_to_the_emulator(emulator) -> None:
    rec = Recorder()
    c = SignedHttpClient(
        emulator.endpoint, REGION, lambda: MASTER.credentials, max_retries=5, sleep=rec.sleep
    )
    emulator.faults.drop_connections(2, path_prefix="/_plugins/_ml/connectors")
    with pytest.raises(TransportError):
        c.request("POST", "/_plugins/_ml/connectors/_search", {"query": {"match_all": {}}})
    assert emulator.faults.pending() == 1 and rec.sleeps == []
    emulator.faults._rules.clear()

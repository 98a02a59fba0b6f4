"""The bulk loader: documents in, every one of them indexed or dead-lettered with its reason.

Why not ``opensearchpy.helpers.streaming_bulk``/``parallel_bulk``: they retry
only 429s, with a fixed chunk size and a fixed thread pool, and count a
document by what was sent. Here the pace adapts (tools/ingest/pace.py), the
per-item status of each ``_bulk`` answer decides each document's fate, and a
document counts as indexed only when OpenSearch acknowledged it (item status
200/201), or, after an answer was lost, when a search by id finds it.

What a ``_bulk`` answer can say (ml-commons 3.7.0.0 and neural-search 3.7.0.0,
cited in the emulator's _bulk section, tests/support/opensearch_emulator.py):

* the whole request refused: 429/502/503/504 from the domain's front end, or a
  dropped connection / timeout: every document of the batch is retried; a lost
  answer is *ambiguous* (the writes may have happened), which is safe because a
  retry with the same id overwrites, and which is settled by a search by id
  before a document is ever dead-lettered;
* per item: ``status_exception`` with the SageMaker endpoint's status relayed
  (429 throttling, 503, 424 model error; all documents of the semantic
  sub-batch fail together) and 429 ``es_rejected_execution_exception`` (the
  write queue): retried with backoff, and they slow the pace;
* per item, anything else 4xx (a mapping error, a security refusal): final at
  once, dead-lettered.

A document that keeps failing after ``isolate_after`` attempts is retried alone
in its request: one text the endpoint always refuses fails its whole semantic
sub-batch, and must not take its neighbours down with it to the dead letters.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as TransportConnectionError
from opensearchpy.exceptions import TransportError

from tools.ingest.deadletter import DeadLetters
from tools.ingest.pace import Pace
from tools.ingest.sources import Document, Malformed, Record

# Answers that mean "the endpoint or the domain is overloaded": retry, slow down.
SLOW_DOWN = frozenset({429, 502, 503, 504, 424})
# Retried too, without slowing down: ML Commons' 500 when the remote call failed with
# no status ("Error communicating with remote model", MLSdkAsyncHttpResponseHandler.java:101-106).
RETRY = SLOW_DOWN | {500}
# ...except when that 500 says the connector's connection pool was full (the AWS SDK's
# message, relayed by ML Commons as above; ml-commons #2487, #4629): too many predicts
# in flight, so slow down too (docs/ingest-capacity.md).
POOL_EXHAUSTED = "Acquire operation took longer than the configured maximum time"
NOT_SENT_TO_ENDPOINT = frozenset({"es_rejected_execution_exception"})


class Stop(RuntimeError):
    """The domain refused the requests themselves (403, 404, ...): nothing more can succeed."""


@dataclass
class Settings:
    index: str
    max_attempts: int = 8
    isolate_after: int = 3
    check_existing: bool = False  # --resume: skip ids already in the index
    semantic_batch_size: int = 10


@dataclass
class Counts:
    read: int = 0
    indexed: int = 0
    skipped: int = 0  # already indexed (--resume)
    failed: int = 0  # dead-lettered documents
    malformed: int = 0  # dead-lettered input records
    confirmed_after_lost_answer: int = 0
    bulk_requests: int = 0
    bulk_answers: int = 0
    retries: int = 0
    throttled_answers: int = 0
    endpoint_calls_estimate: int = 0


@dataclass
class Batch:
    docs: list[Document]
    window: int
    check_existing: bool


@dataclass
class Answer:
    """What happened to one batch (built in a sender thread, applied in the main one)."""

    batch: Batch
    skipped: list[Document] = field(default_factory=list)
    items: list[tuple[Document, int, str, str]] = field(default_factory=list)  # status, type, why
    request_status: int | None = None  # set: the whole request failed
    request_reason: str = ""
    ambiguous: bool = False
    answered: bool = False


def _reason(error: TransportError) -> tuple[int | None, str]:
    status = error.status_code if isinstance(error.status_code, int) else None
    info = error.info
    if isinstance(info, dict):
        cause = info.get("error")
        if isinstance(cause, dict):
            return status, f"{status} {cause.get('type')}: {cause.get('reason')}"
        message = info.get("message") or info.get("Message")
        if message:
            return status, f"{status} {message}"
    return status, f"{status or 'no answer'} {error.error}: {str(info)[:200]}"


class Loader:
    """Runs one load; the caller supplies the client, the records and the dead-letter file."""

    def __init__(
        self,
        client: OpenSearch,
        settings: Settings,
        pace: Pace,
        dead_letters: DeadLetters,
        *,
        progress: Callable[[int], None] = lambda n: None,
        clock: Callable[[], float] = time.monotonic,
        before_send: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.pace = pace
        self.dead = dead_letters
        self.progress = progress
        self.clock = clock
        self.before_send = before_send  # test hook: called with the batch number
        self.counts = Counts()
        self._retry: list[tuple[float, int, Document]] = []
        self._seq = itertools.count()
        self.stopped: str | None = None

    # -- sending (sender threads)

    def _existing(self, docs: list[Document]) -> set[str]:
        """Which of ``docs`` the index holds: an ``ids`` search (the client role may search)."""
        ids = sorted({d.id for d in docs})
        reply = self.client.search(
            index=self.settings.index,
            body={"query": {"ids": {"values": ids}}, "size": len(ids), "_source": False},
        )
        return {hit["_id"] for hit in reply["hits"]["hits"]}

    def _send(self, batch: Batch, number: int) -> Answer:
        answer = Answer(batch)
        docs = batch.docs
        try:
            if self.before_send is not None:
                self.before_send(number)
            if batch.check_existing:
                found = self._existing(docs)
                answer.skipped = [d for d in docs if d.id in found]
                docs = [d for d in docs if d.id not in found]
            if not docs:
                answer.answered = True
                return answer
            lines = []
            for doc in docs:
                lines.append(json.dumps({"index": {"_id": doc.id}}))
                lines.append(json.dumps(doc.source, ensure_ascii=False))
            body = "\n".join(lines) + "\n"
            reply = self.client.bulk(body=body, index=self.settings.index)
        except TransportConnectionError as error:  # includes timeouts: the answer is lost
            answer.request_status, answer.ambiguous = None, True
            answer.request_reason = f"no answer ({type(error).__name__}: {error.info})"[:300]
            return answer
        except TransportError as error:
            answer.request_status, answer.request_reason = _reason(error)
            answer.request_status = answer.request_status or 0
            answer.ambiguous = answer.request_status >= 500
            return answer
        answer.answered = True
        items = reply.get("items") if isinstance(reply, dict) else None
        if not isinstance(items, list) or len(items) != len(docs):
            answer.request_status, answer.ambiguous = 0, True
            answer.request_reason = f"bulk answer with {len(items or [])} items for {len(docs)}"
            return answer
        for doc, item in zip(docs, items, strict=True):
            ((_, result),) = item.items()
            status = int(result.get("status", 0))
            error = result.get("error") or {}
            answer.items.append((doc, status, str(error.get("type", "")),
                                 str(error.get("reason", ""))))  # fmt: skip
        return answer

    # -- deciding (main thread)

    def _retry_later(self, doc: Document, reason: str, delay: float) -> None:
        if doc.attempts >= self.settings.max_attempts:
            self._give_up(doc, f"{reason} (after {doc.attempts} attempts)")
            return
        doc.last_reason = reason
        self.counts.retries += 1
        heapq.heappush(self._retry, (self.clock() + delay, next(self._seq), doc))

    def _give_up(self, doc: Document, reason: str) -> None:
        if doc.ambiguous:
            # The last answer was lost: the write may have happened. Ask before
            # dead-lettering, so no document is both indexed and a dead letter.
            try:
                if doc.id in self._existing([doc]):
                    self._indexed(doc, confirmed=True)
                    return
            except TransportError as error:
                reason += f"; not confirmed absent ({_reason(error)[1]})"
        self.dead.document(doc, reason)
        self.counts.failed += 1
        self.progress(1)

    def _indexed(self, doc: Document, *, confirmed: bool = False) -> None:
        self.counts.indexed += 1
        self.counts.confirmed_after_lost_answer += int(confirmed)
        self.progress(1)

    def _apply(self, answer: Answer) -> None:
        batch = answer.batch
        for doc in answer.skipped:
            if doc.attempts > 1:  # found after an earlier attempt's answer was lost
                self._indexed(doc, confirmed=True)
            else:  # --resume: indexed by an earlier run
                self.counts.skipped += 1
                self.progress(1)
        if answer.answered and answer.request_status is None:
            self.counts.bulk_answers += 1
        if answer.request_status is not None or (not answer.answered):
            status, reason = answer.request_status, answer.request_reason
            if status in (401, 403, 404, 400):
                for doc in batch.docs:
                    self._give_up(doc, reason)
                raise Stop(f"the domain refused a bulk request: {reason}"[:400])
            if status == 413:
                self.pace.shrink_batch()
            elif status is None or status in SLOW_DOWN or status == 0:
                self.counts.throttled_answers += 1
                self.pace.throttled(batch.window)
            skipped = {id(d) for d in answer.skipped}
            for doc in batch.docs:
                if id(doc) in skipped:
                    continue
                doc.ambiguous = doc.ambiguous or answer.ambiguous
                self._retry_later(doc, reason, self.pace.backoff.delay(doc.attempts))
            return
        reached_endpoint = 0
        slow = False
        for doc, status, error_type, why in answer.items:
            if error_type not in NOT_SENT_TO_ENDPOINT:
                reached_endpoint += 1
            if 200 <= status < 300:
                self._indexed(doc)
                continue
            # This answer was received: the item really failed, whatever happened before.
            doc.ambiguous = False
            reason = f"{status} {error_type}: {why}"
            if status in RETRY:
                slow = slow or status in SLOW_DOWN or POOL_EXHAUSTED in why
                self._retry_later(doc, reason, self.pace.backoff.delay(doc.attempts))
            else:
                self._give_up(doc, reason)
        self.counts.endpoint_calls_estimate += math.ceil(
            reached_endpoint / self.settings.semantic_batch_size
        )
        if slow:
            self.counts.throttled_answers += 1
            self.pace.throttled(batch.window)
        elif answer.items:
            self.pace.clean()

    # -- the loop

    def _take(self, records: Iterator[Record], check_existing: bool) -> Batch | None:
        now = self.clock()
        docs: list[Document] = []
        if self._retry and self._retry[0][0] <= now:
            first = self._retry[0][2]
            if first.attempts >= self.settings.isolate_after:
                heapq.heappop(self._retry)
                return self._batch([first], check_existing)
        while len(docs) < self.pace.batch_size and self._retry and self._retry[0][0] <= now:
            if self._retry[0][2].attempts >= self.settings.isolate_after:
                break
            docs.append(heapq.heappop(self._retry)[2])
        while len(docs) < self.pace.batch_size:
            record = next(records, None)
            if record is None:
                self._exhausted = True
                break
            self.counts.read += 1
            if isinstance(record, Malformed):
                self.dead.malformed(record)
                self.counts.malformed += 1
                self.progress(1)
                continue
            docs.append(record)
        return self._batch(docs, check_existing) if docs else None

    def _batch(self, docs: list[Document], check_existing: bool) -> Batch:
        for doc in docs:
            doc.attempts += 1
        # A retried document may have been written by a request whose answer was lost.
        check = check_existing or any(d.ambiguous for d in docs)
        return Batch(docs, self.pace.window, check)

    def run(self, records: Iterable[Record]) -> Counts:
        """Load everything; returns the counts (``self.stopped`` says why it stopped early)."""
        source = iter(records)
        self._exhausted = False
        numbers = itertools.count(1)
        pool = ThreadPoolExecutor(max_workers=self.pace.max_concurrency)
        in_flight: dict[Future[Answer], Batch] = {}
        try:
            while True:
                while (
                    self.stopped is None
                    and len(in_flight) < self.pace.concurrency
                    and not self.pace.paused()
                ):
                    batch = self._take(source, self.settings.check_existing)
                    if batch is None:
                        break
                    self.counts.bulk_requests += 1
                    in_flight[pool.submit(self._send, batch, next(numbers))] = batch
                if not in_flight and (self.stopped or (self._exhausted and not self._retry)):
                    break
                waits = [0.25, self.pace.paused()]
                if self._retry:
                    waits.append(self._retry[0][0] - self.clock())
                timeout = max(0.001, min(w for w in waits if w > 0) if any(w > 0 for w in waits)
                              else 0.001)  # fmt: skip
                if not in_flight:
                    time.sleep(timeout)
                    continue
                done, _ = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
                for future in done:
                    in_flight.pop(future)
                    try:
                        self._apply(future.result())
                    except Stop as stop:
                        self.stopped = str(stop)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if self.stopped:
            # Documents waiting for a retry were attempted: they are dead letters now
            # (--resume retries them); unread records stay for --resume to read.
            while self._retry:
                doc = heapq.heappop(self._retry)[2]
                self._give_up(doc, f"not retried, the run stopped; last: {doc.last_reason}")
        return self.counts

    def carry_over(self, entries: Iterable[dict[str, Any]]) -> None:
        """Old dead letters that cannot be retried are kept in the new file as they were."""
        for entry in entries:
            self.dead.carry(entry)

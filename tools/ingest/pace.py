"""Back-pressure: how many bulk requests are in flight, how large they are, and how long to wait.

Why this shape (additive increase, multiplicative decrease, as TCP does): the
limit that matters is the SageMaker endpoint behind the semantic field, which
OpenSearch does not protect. ML Commons relays the endpoint's 429/503/424
instead of retrying them (DESIGN.md; ml-commons 3.7.0.0
MLSdkAsyncHttpResponseHandler.java:115-136 retries only ``ThrottlingException``
and only up to the connector's ``max_retry_times``, 0 by default), and the
domain's own write queue answers 429 when full. Each such answer halves the
concurrency and the batch size and pauses every sender for a backoff; each run
of clean answers adds one request in flight and grows the batch by a quarter,
up to the configured maxima.

Only one decrease per "window": answers to requests sent before the last
decrease do not decrease again (they saw the old load), or a burst of
throttled answers to requests already in flight would collapse the pace to 1.

Backoff is bounded exponential with "equal jitter": ``d = min(cap, base * 2**(n-1))``,
then a uniform draw in ``[d/2, d]``, so retries of many senders spread out but
never come back at once nor wait longer than ``cap``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CLEAN_RUN = 2  # clean answers in a row before growing again


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempt >= 1)."""
        ceiling = min(self.cap, self.base * 2 ** max(attempt - 1, 0))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


class Pace:
    def __init__(
        self,
        *,
        max_concurrency: int,
        max_batch: int,
        min_batch: int,
        backoff: Backoff,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrency < 1 or max_batch < 1 or not 1 <= min_batch <= max_batch:
            raise ValueError("concurrency and batch sizes must be >= 1, min batch <= batch")
        self.max_concurrency = max_concurrency
        self.max_batch = max_batch
        self.min_batch = min_batch
        self.backoff = backoff
        self.clock = clock
        self.concurrency = max_concurrency
        self.batch_size = max_batch
        self.pause_until = 0.0
        self.window = 0  # bumped at each decrease
        self.throttles = 0  # throttled answers since the last clean one
        self.streak = 0
        self.decreases = 0
        self.lowest_concurrency = max_concurrency
        self.lowest_batch = max_batch

    def paused(self) -> float:
        """Seconds left of the current pause (0 when senders may go)."""
        return max(0.0, self.pause_until - self.clock())

    def throttled(self, window: int) -> None:
        """An answer that says "slow down" to a request sent in ``window``."""
        self.streak = 0
        self.throttles += 1
        self.pause_until = max(self.pause_until, self.clock() + self.backoff.delay(self.throttles))
        if window < self.window:
            return
        self.window += 1
        self.decreases += 1
        self.concurrency = max(1, self.concurrency // 2)
        self.batch_size = max(self.min_batch, self.batch_size // 2)
        self.lowest_concurrency = min(self.lowest_concurrency, self.concurrency)
        self.lowest_batch = min(self.lowest_batch, self.batch_size)

    def clean(self) -> None:
        """An answer with no throttling in it."""
        self.throttles = 0
        self.streak += 1
        if self.streak >= CLEAN_RUN:
            self.streak = 0
            self.concurrency = min(self.max_concurrency, self.concurrency + 1)
            self.batch_size = min(self.max_batch, self.batch_size + max(1, self.batch_size // 4))

    def shrink_batch(self) -> None:
        """The request was too large (413): halve the batch, whatever the window."""
        self.batch_size = max(1, self.batch_size // 2)
        self.min_batch = min(self.min_batch, self.batch_size)
        self.lowest_batch = min(self.lowest_batch, self.batch_size)

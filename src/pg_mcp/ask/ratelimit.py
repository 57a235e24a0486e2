"""A thread-safe token bucket (the rate limit on ``ask``), and one bucket per client.

``rate`` tokens are added per second up to ``burst``; each call takes one.
A rate <= 0 disables the limit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self._clock = clock
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)

    def try_acquire(self, n: float = 1.0) -> tuple[bool, float]:
        """Take ``n`` tokens if there are enough: ``(True, 0)``; else ``(False, seconds to wait)``."""
        if not self.enabled:
            return True, 0.0
        with self._lock:
            self._refill(self._clock())
            if self._tokens >= n:
                self._tokens -= n
                return True, 0.0
            return False, (n - self._tokens) / self.rate

    def available(self) -> float:
        if not self.enabled:
            return float("inf")
        with self._lock:
            self._refill(self._clock())
            return self._tokens


class KeyedBuckets:
    """One :class:`TokenBucket` per client key, the least recently used dropped beyond
    ``max_keys`` (memory stays bounded however many clients come and go).

    The key is the authenticated client (``pg_mcp.server.auth.client_key``); ``None``, an
    unauthenticated transport, is one shared bucket. A dropped client starts again with a
    full bucket, which only matters with more than ``max_keys`` clients active at once.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = float(rate)
        self.burst = burst
        self.max_keys = max(1, int(max_keys))
        self._clock = clock
        self._buckets: OrderedDict[str | None, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def bucket(self, key: str | None) -> TokenBucket:
        """The client's bucket (created full on first use, marked most recently used)."""
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                found = self._buckets[key] = TokenBucket(self.rate, self.burst, clock=self._clock)
                while len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
            return found

    def try_acquire(self, key: str | None, n: float = 1.0) -> tuple[bool, float]:
        return self.bucket(key).try_acquire(n)

    def __len__(self) -> int:
        return len(self._buckets)

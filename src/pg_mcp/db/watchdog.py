"""Client-side deadlines for statements: cancel on the server, then cut the connection.

The server's statement_timeout stops a runaway query in the normal case. The watchdog is the
deadline for everything else: a server that does not honour the timeout, a statement that
hangs in the network, a partitioned link where neither the answer nor the cancel arrives.

Each ``Watchdog`` has two stages:

1. at its deadline it asks the server to cancel (``conn.cancel_safe``, psycopg's public API,
   itself with a timeout): the statement ends with QueryCanceled and the caller goes on;
2. if the cancel cannot be delivered, or the statement is still running ``grace`` seconds
   later, it shuts the connection's socket down (``socket.shutdown`` on a duplicate of
   ``conn.fileno()``): every wait on that socket returns at once with an error, in whatever
   thread it is, and the caller discards the connection. Nothing waits forever.

One daemon thread per ``Deadlines`` runs every watchdog of its owner (the executor's ``Pools``):
starting a thread per statement costs about a millisecond. There is no module-level state.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pg_mcp.db.watchdog")

CANCEL_TIMEOUT = 5.0  # seconds the cancel request may take before the socket is cut


class Deadlines:
    """Runs watchdogs on one daemon thread, started on first use; ``close()`` stops it."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._pending: dict[Watchdog, None] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(
        self,
        conn: Any,
        seconds: float,
        *,
        grace: float = 2.0,
        cancel_timeout: float = CANCEL_TIMEOUT,
    ) -> Watchdog:
        """A watchdog for ``conn`` firing ``seconds`` from when it is entered (``with``); the
        cancel request may take ``cancel_timeout`` seconds, the statement ``grace`` more after
        it, before the socket is cut."""
        return Watchdog(self, conn, seconds, grace, cancel_timeout)

    def _add(self, dog: Watchdog) -> None:
        with self._cond:
            self._pending[dog] = None
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._loop, name="pg-mcp-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _done(self, dog: Watchdog) -> None:
        """After this returns the watchdog has finished firing, or will never fire."""
        with self._cond:
            while dog.state == "firing":
                self._cond.wait()
            if dog.state in ("pending", "cancelled-sent"):
                dog.state = "cancelled" if dog.state == "pending" else "fired"
            self._pending.pop(dog, None)
            dog.conn = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed and not self._pending:
                        return
                    now = self.clock()
                    due = [d for d in self._pending if d.state != "firing" and d.due <= now]
                    if due:
                        for dog in due:
                            dog.stage, dog.state = dog.state, "firing"
                        break
                    nxt = min((d.due for d in self._pending), default=math.inf)
                    delay = nxt - now
                    self._cond.wait(None if delay == math.inf else min(max(delay, 0.001), 60.0))
            for dog in due:
                try:
                    dog._fire()
                except Exception:  # a watchdog must never die: log and carry on
                    log.exception("watchdog failed")
                finally:
                    with self._cond:
                        if dog.state == "firing":
                            dog.state = dog.next_state
                        if dog.state == "fired":
                            self._pending.pop(dog, None)
                        self._cond.notify_all()


class Watchdog:
    """Cancel, then cut, the connection's statement if it outlives its deadline (see module)."""

    def __init__(
        self, owner: Deadlines, conn: Any, seconds: float, grace: float, cancel_timeout: float
    ) -> None:
        self.owner = owner
        self.conn: Any = conn
        self.seconds = seconds
        self.grace = grace
        self.cancel_timeout = cancel_timeout
        self.due = math.inf
        # new -> pending -> (cancelled | firing -> cancelled-sent -> (fired | firing -> fired))
        self.state = "new"
        self.stage = ""  # the state that was due when it started firing
        self.next_state = "fired"
        self.cut = False  # the socket was shut down (the connection is unusable)

    @property
    def fired(self) -> bool:
        """The deadline passed: a cancel was sent or the socket was cut."""
        return self.state in ("cancelled-sent", "fired") or self.cut

    def _fire(self) -> None:
        conn = self.conn
        if conn is None:
            self.next_state = "fired"
            return
        if self.stage == "pending":  # first stage: ask the server to cancel
            try:
                conn.cancel_safe(timeout=self.cancel_timeout)
            except Exception as exc:
                log.warning("cancel could not be delivered (%s): cutting the connection", exc)
                self._cut(conn)
                self.next_state = "fired"
                return
            self.due = self.owner.clock() + self.grace
            self.next_state = "cancelled-sent"
            return
        self._cut(conn)  # second stage: the statement outlived the cancel
        self.next_state = "fired"

    def _cut(self, conn: Any) -> None:
        """Shut the socket down so that every wait on it ends (the fd stays the connection's)."""
        self.cut = True
        try:
            fd = os.dup(conn.fileno())
        except Exception:
            return  # already closed
        try:
            with socket.socket(fileno=fd) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def __enter__(self) -> Watchdog:
        self.due = self.owner.clock() + self.seconds
        self.state = "pending"
        self.owner._add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.owner._done(self)

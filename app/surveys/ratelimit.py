"""A brake on guessing personal links (architecture.md, "Personal links").

Only *failed* lookups count, and they count against the client's address: a whole office
behind one NAT address answering at once never trips it, and a valid link keeps working
for a client that has been braked (so one mistyped link does not lock a colleague out).
The 256-bit token is what makes guessing hopeless; this limiter keeps scanners and
broken clients from hammering the lookup and makes their attempts show up as 429s.

Each client has a token bucket: ``failures`` attempts at once, refilled at
``failures`` per ``per_seconds`` (30 per 10 minutes by default: a burst of 30, then one
every 20 seconds). Two floats per client, at most ``max_clients`` clients (the least
recently seen are forgotten first), so a flood of addresses cannot exhaust memory.

The state lives in the process: with N ``pulse serve`` processes a client gets up to N
times the budget, and a restart forgets it. That is acceptable for a brake (the
alternative, a shared store, is infrastructure the design avoids). Behind a reverse
proxy, run uvicorn with ``--proxy-headers --forwarded-allow-ips=<proxy>`` so the
client's address, not the proxy's, is the key."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import FastAPI, Request

from app.core.errors import PulseError

DEFAULT_FAILURES = 30
DEFAULT_PER_SECONDS = 600.0
DEFAULT_MAX_CLIENTS = 100_000


class TooManyAttempts(PulseError):
    status, code = 429, "too_many_attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "too many links that do not work were tried from this address; "
            f"try again in {retry_after} seconds",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class FailedLookupLimiter:
    """Per-client token buckets of failed link lookups."""

    def __init__(
        self,
        failures: int = DEFAULT_FAILURES,
        per_seconds: float = DEFAULT_PER_SECONDS,
        *,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or per_seconds <= 0 or max_clients < 1:
            raise ValueError("failures, per_seconds and max_clients must be positive")
        self.capacity = float(failures)
        self.rate = failures / per_seconds  # tokens regained per second
        self.max_clients = max_clients
        self.clock = clock
        # client → (tokens left, when last updated); ordered oldest-touched first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, client: str, now: float) -> float:
        tokens, updated = self._buckets.get(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - updated) * self.rate)

    def record_failure(self, client: str) -> int | None:
        """Count one failed lookup. None while the client is within its budget; once
        over it, the whole seconds to wait (for ``Retry-After``) and nothing is spent.

        No await inside, so on one event loop it is atomic without a lock."""
        now = self.clock()
        tokens = self._tokens(client, now)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            self._buckets.move_to_end(client)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return None
        self._buckets[client] = (tokens, now)
        self._buckets.move_to_end(client)
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def __len__(self) -> int:
        return len(self._buckets)


def client_key(request: Request) -> str:
    """The address a failure counts against. IPv6 clients are keyed by their /64, the
    block one subscriber usually holds, or a single host could rotate through 2⁶⁴
    addresses and never be braked."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def limiter_for(app: FastAPI) -> FailedLookupLimiter:
    """The app's limiter, made on first use, so every app (and every test's app) has
    its own. Tests may replace ``app.state.link_limiter`` with a smaller one."""
    limiter = getattr(app.state, "link_limiter", None)
    if not isinstance(limiter, FailedLookupLimiter):
        limiter = FailedLookupLimiter()
        app.state.link_limiter = limiter
    return limiter

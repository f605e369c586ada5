"""The drop runner's own client of the API's admin routes (not the buyers'): the venue's load,
the settings, the stats, the sales; a 503 on a read or an idempotent change is retried."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

ADMIN_TOKEN = "drop-runner-admin"


class Admin:
    """A keep-alive client of the API for the runner's own calls (not the buyers')."""

    def __init__(self, base: str) -> None:
        u = urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.unavailable: list[str] = []  # 503s the runner's own calls met (then retried)

    def call(self, method: str, path: str, body: Any = None, raw: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(4):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
            except (ConnectionError, OSError):
                self.conn.close()
                if attempt == 3:
                    raise
                continue
            if resp.status == 503 and attempt < 3 and method in ("GET", "PUT", "PATCH"):
                # A read, or an idempotent load/settings change: the 503's Retry-After.
                self.unavailable.append(f"{method} {path}: {payload[:200].decode()}")
                time.sleep(float(resp.getheader("Retry-After") or 1))
                continue
            break
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
        return payload.decode() if raw else json.loads(payload)

    def close(self) -> None:
        self.conn.close()

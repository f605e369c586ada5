"""Real concurrent HTTP requests for the concurrency tests: one thread and one keep-alive
connection per client, all released at once by a barrier."""

from __future__ import annotations

import http.client
import threading
from concurrent.futures import ThreadPoolExecutor

import orjson

Request = tuple[str, str, object | None, dict[str, str]]  # method, path, JSON body, headers


def fire(host: str, port: int, batches: list[list[Request]]) -> list[list[tuple[int, dict]]]:
    """Run each batch on its own connection and thread, all batches at the same moment.
    Returns, per batch, ``(status, json body)`` of each request in order."""
    barrier = threading.Barrier(len(batches))

    def run(batch: list[Request]) -> list[tuple[int, dict]]:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.connect()
        out = []
        barrier.wait()
        for method, path, body, headers in batch:
            data = orjson.dumps(body) if body is not None else None
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json", **headers})
            resp = conn.getresponse()
            out.append((resp.status, orjson.loads(resp.read() or b"{}")))
        conn.close()
        return out

    with ThreadPoolExecutor(len(batches)) as pool:
        return list(pool.map(run, batches))

"""Real concurrent HTTP requests for the concurrency and fault tests: one thread and one
keep-alive connection per client, all released at once by a barrier (``fire``), or running
until a deadline with every answer kept with its time (``Client``, ``run_threads``)."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import orjson

HOST = "127.0.0.1"
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


@dataclass
class Answer:
    at: float  # time.monotonic() when the request was sent
    status: int
    code: str
    seconds: float  # until its answer
    what: str
    detail: str = ""


@dataclass
class Client:
    """One keep-alive connection; every answer is kept with its time and code."""

    port: int
    answers: list[Answer] = field(default_factory=list)
    conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: object = None,
             headers: dict[str, str] | None = None, what: str = "") -> tuple[int, dict]:
        t0 = time.monotonic()
        for attempt in (0, 1):  # a keep-alive connection the server closed: once more
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
                self.conn.request(method, path, body=orjson.dumps(body) if body else None,
                                  headers={"Content-Type": "application/json",
                                           **(headers or {})})
                resp = self.conn.getresponse()
                data = orjson.loads(resp.read() or b"{}")
                break
            except (ConnectionError, http.client.HTTPException):
                self.conn = None
                if attempt:
                    raise
        self.answers.append(Answer(t0, resp.status, data.get("code", ""),
                                   time.monotonic() - t0, what or path, data.get("detail", "")))
        return resp.status, data


def run_threads(n: int, seconds: float, work: Callable[[int, Client, float], None],
                port: int) -> tuple[list[Client], list[threading.Thread]]:
    """``work(i, client, deadline)`` on ``n`` threads, each with its own client, started now."""
    clients = [Client(port) for _ in range(n)]
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=work, args=(i, c, deadline)) for i, c in
               enumerate(clients)]
    for t in threads:
        t.start()
    return clients, threads


def join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(60)

"""The development stack: what starts Redis, a local Redis Cluster and the API for the tests
(``tests/``) and for the benchmarks (``loadtests/``), and what measures their processes' CPU.
Both import it; it imports neither. Nothing here listens beyond 127.0.0.1, and every process
stops with the context that started it (the nodes of ``make cluster`` aside, which outlive it
on purpose).

- ``redis_server``: one redis-server from the repo's redis.conf on a free port in a directory;
- ``cluster_nodes`` and ``local_cluster``: a local Redis Cluster of masters and replicas, its
  nodes' processes and what ``CLUSTER NODES`` says of them;
- ``api_server``: the API (or any ASGI app) under granian or uvicorn, flags of api/serve.py;
- ``demo_stack``: a Redis (or a local cluster) seeded with the demo data, and the API on it;
- ``cpu``: CPU seconds of processes, of process trees and of the whole machine;
- ``ports``: free ports, and waiting until something listens or answers HTTP;
- ``browser``: headless Chromium under Selenium, and ALTCHA's widget solving in a page of the
  API (the proof-of-work bench and its test);
- ``python -m devstack cluster start|stop|status`` (``cli``): the cluster of ``make cluster``.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

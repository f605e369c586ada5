"""The HTTP benchmarks, each under wrk or a raw client against the API started here:
every endpoint beside a bare Starlette hello (``endpoints``, with ``hello``), big venues'
seat lists (``venue``), one worker offered twice its capacity (``overload``), 10,000
keep-alive connections (``connections``), what more cluster masters buy (``masters``); one
wrk run with the CPU around it (``wrk``, scripts in ``wrk/``) and the probe and connection
client (``rawclient``)."""

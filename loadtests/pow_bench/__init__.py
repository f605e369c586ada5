"""The proof-of-work gate measured from both sides: a visitor's browser, Python, a bot farm, the
server and Redis (``python -m loadtests.pow_bench.solve``)."""

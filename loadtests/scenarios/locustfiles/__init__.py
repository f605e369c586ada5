"""The load-test report's seven locust scenarios (s1..s7) and the soak run; see ../README.md."""

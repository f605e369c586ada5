"""The report's seven locust scripts exactly as it prints them (loadtests/scenarios/registry.py
runs them with ``--as-printed``). The one change: §2-§4 hard-code a token of the report's own
service (a UUID); here it is read from REPORT_TOKEN, one ACTIVE token the runner issues before
the run, as every user of the printed script shares one token."""

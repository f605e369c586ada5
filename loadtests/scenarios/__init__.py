"""The report's seven locust scenarios and the soak run (``python -m loadtests run``): the
scenarios known (``registry``), the locustfiles (``locustfiles/``), one scenario's run and
outcome (``runner``, ``result``), its report and charts (``report``, ``charts``), the soak's
sampler and leak rule (``soak``)."""

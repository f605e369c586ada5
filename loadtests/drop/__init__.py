"""The ticket drop (``python -m loadtests run drop``): the plan (``plan``), the simulated buyer
(``buyer``), its two drivers (``asyncio_driver``, ``locust_driver``) and what they record
(``recorder``); the runner (``runner``, with ``admin``: its client of the admin routes), one
run's record (``run``), the books and the figures after it (``books``, ``analysis``), the
report and the charts (``report``, ``charts``)."""

"""What the load generators share: the lean keep-alive HTTP client (``pool``), the
statistics (``stats``: one percentile), locust's CSV files (``locust_csv``), and starting and
stopping generator processes (``processes``)."""

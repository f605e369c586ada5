"""``python -m loadtests run <scenario|all> [flags]`` and ``python -m loadtests cluster
start|stop|status``: see loadtests/README.md."""

import sys

from loadtests.runner import main

sys.exit(main())

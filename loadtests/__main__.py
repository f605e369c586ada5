"""``python -m loadtests run <scenario|all|drop|stress> [flags]`` and ``python -m loadtests
charts``: see loadtests/README.md. (The local cluster's command line is ``python -m devstack
cluster``.)"""

import sys

from loadtests.runner import main

sys.exit(main())

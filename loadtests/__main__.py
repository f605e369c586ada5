"""``python -m loadtests run <scenario|all> [flags]``: see loadtests/README.md."""

import sys

from loadtests.runner import main

sys.exit(main())

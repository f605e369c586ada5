"""``python -m devstack cluster start|stop|status`` (devstack/cli.py).

Run by a Python without the project's dependencies (a bare ``python`` outside the venv, as a
fresh shell has it), it runs itself again under the venv's Python that ``make install``
made, instead of stopping at the first missing module."""

import os
import sys

from devstack import REPO

VENV_PYTHON = REPO / ".venv" / "bin" / "python"

try:
    from devstack.cli import main
except ModuleNotFoundError as e:
    if os.environ.get("DEVSTACK_REEXEC") or not VENV_PYTHON.exists():
        sys.exit(f"python -m devstack needs the project's dependencies ({e}): `make install`, "
                 f"then {VENV_PYTHON.relative_to(REPO)} -m devstack {' '.join(sys.argv[1:])}")
    os.environ["DEVSTACK_REEXEC"] = "1"  # once: a venv without them stops with the message
    os.execv(VENV_PYTHON, [str(VENV_PYTHON), "-m", "devstack", *sys.argv[1:]])

sys.exit(main())

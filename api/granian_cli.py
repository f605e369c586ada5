"""``python -m api.granian_cli ARGS``: granian's own command line (api/serve.py builds ARGS),
with one change: a worker ignores SIGINT and shuts down on the first SIGTERM, its supervisor's.

Why: a Ctrl-C in a terminal sends SIGINT to the whole process group, and granian's
supervisor, on its own SIGINT, sends each worker a SIGTERM at once. A worker therefore gets
two signals a few microseconds apart, and granian's worker could hang on that pair for good:

- granian's worker handler calls ``WorkerSignal.set()`` for every SIGINT or SIGTERM. That call
  sends on a one-slot channel which the worker's shutdown thread reads only once, so the
  third call blocks, holding the GIL: the in-flight requests and the lifespan's shutdown
  never run, and the supervisor waits on the worker with no timeout (granian 2.8,
  ``src/workers.rs`` ``WorkerSignal`` and ``src/serve.rs``).
- uvloop runs the handler of a signal that arrives while it dispatches another twice: once
  for the set its Python-level handler fills, again for the byte on its self-pipe
  (``Loop._invoke_signals``). So two signals sometimes make three calls.

Leaving SIGINT to the supervisor also means no worker exits before its supervisor asked it to
(granian logs that as an "Unexpected exit" and then exits with 1). Ctrl-C still stops the
whole server: through the supervisor, as with a plain SIGTERM or SIGINT to it alone.

And a SIGTERM that comes while a worker boots (the supervisor stopping just after it started
or respawned one) waits for the worker's handler instead of being lost: until then the
worker runs the supervisor's handler, inherited through fork, which only marks the worker's
copy of the supervisor, and uvloop drops a signal that comes while the loop is not running.
granian's supervisor then waited for that worker for ever. So SIGTERM stays blocked from the
fork until the worker's loop runs with its handler."""

from __future__ import annotations

import os
import signal
from typing import Any

from granian import _signals
from granian.cli import entrypoint

_granian_loop_signals = _signals.set_loop_signals


def set_loop_signals(loop: Any) -> Any:
    """granian's ``set_loop_signals`` (the worker's shutdown event, its handlers on ``loop``),
    then SIGTERM acts once and SIGINT not at all."""
    global _supervisor
    _supervisor = False  # a worker: its own forks (none) keep their SIGTERM
    event = _granian_loop_signals(loop)
    fired = False

    def on_sigterm() -> None:
        nonlocal fired
        if not fired:
            fired = True
            event.set()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)  # replaces granian's
        loop.remove_signal_handler(signal.SIGINT)
    except NotImplementedError:  # a loop without signal handlers: granian's own then
        _unblock_sigterm()
        return event
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop.call_soon(_unblock_sigterm)  # once the loop runs: a SIGTERM held since fork comes now
    return event


_supervisor = True


def _block_sigterm() -> None:
    if _supervisor:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def _unblock_sigterm() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _unblock_sigterm_in_supervisor() -> None:
    if _supervisor:
        _unblock_sigterm()


# At import, not under __main__: with the spawn start method a worker imports this module (as
# __mp_main__) instead of inheriting it; the workers look the function up when they start.
_signals.set_loop_signals = set_loop_signals
# The supervisor forks its workers (multiprocessing's fork start method) with SIGTERM blocked
# in the forking thread, which the child inherits; the supervisor gets a SIGTERM held meanwhile
# right after. (The spawn start method execs a fresh interpreter: no handler to inherit, and a
# SIGTERM before granian's ends the booting worker at once.)
os.register_at_fork(before=_block_sigterm, after_in_parent=_unblock_sigterm_in_supervisor)

if __name__ == "__main__":
    entrypoint()

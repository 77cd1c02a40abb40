"""The supervisor of several workers stops on a signal whatever the main thread was doing."""

from __future__ import annotations

import signal
import threading

from registro.server import _Supervisor


def test_the_signal_handler_takes_no_lock_the_code_it_interrupted_may_hold() -> None:
    """A Python signal handler runs in the main thread between two bytecodes (the signal
    module's documentation), so it may interrupt uvicorn's loop inside `should_exit.wait()`, or
    the handler of the signal before it inside `should_exit.set()`: both hold the Event's
    Condition lock, which is not re-entrant. A handler that set the Event waited for that lock
    for ever, the workers already stopped (`make bench` stops each server with two SIGTERMs,
    and one such stop hung). Here the lock is held, as the interrupted code holds it, while the
    handler runs; then uvicorn's loop reads the signal (Multiprocess.handle_signals)."""
    supervisor = _Supervisor.__new__(_Supervisor)  # no socket, no workers
    supervisor.processes, supervisor.signal_queue = [], []
    supervisor.should_exit = threading.Event()
    handled = threading.Event()

    def handle() -> None:
        supervisor._on_signal(signal.SIGTERM, None)
        handled.set()

    with supervisor.should_exit._cond:  # type: ignore[attr-defined]
        thread = threading.Thread(target=handle, daemon=True)
        thread.start()
        returned = handled.wait(2)
    thread.join(5)
    assert returned, "the handler waited for the lock of the code it interrupted"
    assert supervisor.signal_queue == [signal.SIGTERM]
    supervisor.handle_signals()
    assert supervisor.should_exit.is_set()

"""The supervisor of several workers stops on a signal whatever the main thread was doing."""

from __future__ import annotations

import signal
import threading

import pytest

from registro.server import _Supervisor


def _supervisor(*workers: object) -> _Supervisor:
    """A supervisor of `workers`, without its socket or its signal handlers."""
    supervisor = _Supervisor.__new__(_Supervisor)
    supervisor.processes, supervisor.signal_queue = list(workers), []
    supervisor.should_exit = threading.Event()
    supervisor.config, supervisor.sockets = None, []
    return supervisor


def test_the_signal_handler_takes_no_lock_the_code_it_interrupted_may_hold() -> None:
    """A Python signal handler runs in the main thread between two bytecodes (the signal
    module's documentation), so it may interrupt uvicorn's loop inside `should_exit.wait()`, or
    the handler of the signal before it inside `should_exit.set()`: both hold the Event's
    Condition lock, which is not re-entrant. A handler that set the Event waited for that lock
    for ever, the workers already stopped (`make bench` stops each server with two SIGTERMs,
    and one such stop hung). Here the lock is held, as the interrupted code holds it, while the
    handler runs; then uvicorn's loop reads the signal (Multiprocess.handle_signals)."""
    supervisor = _supervisor()
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


class _ExitedWorker:
    """A worker that has finished its drain and exited."""

    class process:  # as multiprocessing.Process is named on uvicorn's Process
        pid = None
        exitcode = 0

    exitcode = 0
    pid = None

    def is_alive(self, timeout: float = 5) -> bool:
        return False

    def kill(self) -> None: ...
    def join(self) -> None: ...


def test_a_worker_that_exits_before_the_signal_is_read_is_not_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn's loop reads the queued signal up to half a second after it came, and in between
    replaces any worker that is no longer alive (Multiprocess.keep_subprocess_alive). A worker
    that drained quickly would be replaced by one that never gets a signal, and the supervisor
    would then wait for it for ever."""
    started: list[object] = []

    class Replacement:
        def __init__(self, *args: object) -> None:
            started.append(self)

        def start(self) -> None: ...

    monkeypatch.setattr("uvicorn.supervisors.multiprocess.Process", Replacement)
    supervisor = _supervisor(_ExitedWorker())
    supervisor._on_signal(signal.SIGTERM, None)
    supervisor.keep_subprocess_alive()  # before uvicorn's loop has read the signal
    assert started == []

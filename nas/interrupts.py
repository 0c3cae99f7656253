"""Ctrl-C and SIGTERM as KeyboardInterrupt, for the command-line entry points and the search's workers.

Python runs a signal's handler between two bytecodes of the main thread, wherever those are, a
finalizer (`__del__`) or a weakref callback included. An exception raised there cannot propagate:
Python prints it as "Exception ignored in ..." and goes on, and the interrupt is lost (a worker
stopped by its parent trained on with its signals ignored, its KeyboardInterrupt swallowed by
SQLAlchemy's weakref callback). Here a lost interrupt is raised again where the main thread can take it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

__all__ = ["interrupt_on_signals"]


def interrupt_on_signals(*, once: bool = False) -> None:
    """From now on SIGINT and SIGTERM raise KeyboardInterrupt in the main thread: SIGTERM (a
    scheduler's stop, `kill`) ends the current trial like Ctrl-C does, and so does SIGINT even where
    it was inherited as ignored (a non-interactive shell ignores it in the jobs it starts with `&`,
    and Python then leaves it ignored, so `kill -INT` did nothing). With `once`, only the first
    signal does and later ones are ignored, so that what the interrupt records is recorded whole
    (a worker: Ctrl-C at a terminal reaches it, and then its parent's own stop signal follows)."""

    def handler(signum: int, frame: Any) -> None:
        if once:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    previous = sys.unraisablehook

    def redeliver(unraisable: Any) -> None:
        ours = threading.current_thread() is threading.main_thread()  # where signal handlers run
        if not (ours and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            previous(unraisable)
            return
        signal.signal(signal.SIGINT, handler)
        # Sent from another thread once this hook is done: os.kill here (or while the thread starts)
        # would run the handler at once, inside this hook, where its exception is lost again.
        returned = threading.Event()

        def send() -> None:
            returned.wait()
            os.kill(os.getpid(), signal.SIGINT)  # the main thread takes it at its next bytecode

        threading.Thread(target=send, name="redeliver-interrupt", daemon=True).start()
        returned.set()

    sys.unraisablehook = redeliver

"""Process pools for the data stage (synthetic speech, feature extraction) that always end.

``multiprocessing.Pool`` used as a context manager ends with ``terminate()``: SIGTERM to each worker,
then a join. Under pytest the harness plugin turns SIGTERM into KeyboardInterrupt (so a cancelled CI
job still prints its table), forked workers inherit that handler, and a worker caught inside the
pool's queue lock can then survive the SIGTERM: the join waits forever (seen: a finished data set
generation hung the whole bench). So workers get the default SIGTERM/SIGINT back, and a pool that
finished its work is closed and joined (workers leave on their own) instead of terminated.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
from collections.abc import Callable, Iterator
from typing import Any


def _worker_start(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # terminate() really ends a worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def pool(processes: int, method: str = "fork", initializer: Callable[..., None] | None = None,
         initargs: tuple = ()) -> Iterator[Any]:
    """A ``multiprocessing`` pool: closed and joined after the block, terminated if the block raised."""
    p = mp.get_context(method).Pool(processes, initializer=_worker_start, initargs=(initializer, initargs))
    try:
        yield p
    except BaseException:
        p.terminate()
        p.join()
        raise
    p.close()
    p.join()

"""Capture what C/C++ libraries write straight to the process's file descriptors 1 and 2.

TensorFlow's converter (model export) and TFLM's interpreter (device reference) both print past
``sys.stdout``; the harness keeps that text out of tables and progress bars and shows it only on error.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator


class _Captured:
    text: str = ""


@contextlib.contextmanager
def capture_c_output(fds: tuple[int, ...] = (1, 2)) -> Iterator[_Captured]:
    """Redirect the process-level stdout/stderr file descriptors into a buffer.

    TFLM's ``print_allocations`` and its error reports, and TensorFlow's converter, write from C++
    straight to fd 1/2, past ``sys.stdout``; only an fd redirect catches them. The text is available
    as ``.text`` after the block, also when it raised.
    """
    captured = _Captured()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    python_side = io.StringIO()  # Python-level prints too, when sys.stdout is not fd 1 (pytest, IDEs)
    with tempfile.TemporaryFile() as tmp:
        try:
            for fd in fds:
                os.dup2(tmp.fileno(), fd)
            with contextlib.ExitStack() as stack:
                if 1 in fds:
                    stack.enter_context(contextlib.redirect_stdout(python_side))
                if 2 in fds:
                    stack.enter_context(contextlib.redirect_stderr(python_side))
                yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            tmp.seek(0)
            captured.text = tmp.read().decode(errors="replace") + python_side.getvalue()

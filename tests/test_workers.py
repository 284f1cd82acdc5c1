"""harness.workers.pool ends: closed and joined after its work, terminated after an error, under the
SIGTERM -> KeyboardInterrupt handler that the pytest plugin installs (and forked workers inherit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from harness.paths import REPO_ROOT

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from harness.workers import pool

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, interrupt)  # what the plugin does in the main pytest process

    def square(x):
        return x * x

    def boom(x):
        raise ValueError("bad clip %d" % x)

    for round_ in range(20):  # the hang was a race: try it many times
        with pool(2, "fork") as p:
            assert sorted(p.imap_unordered(square, range(200), chunksize=4)) == [x * x for x in range(200)]
            assert sorted(p.imap_unordered(square, range(50))) == [x * x for x in range(50)]
    try:
        with pool(2, "fork") as p:
            list(p.imap_unordered(boom, range(10)))
    except ValueError as exc:
        print("raised:", exc)
    print("done")
""")


def test_pools_end_after_work_and_after_errors() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)  # a bound that proves "no hang", not a speed check
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "raised: bad clip" in proc.stdout and proc.stdout.strip().endswith("done")

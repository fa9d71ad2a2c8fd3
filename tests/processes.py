"""Waiting on a child process's log instead of sleeping a fixed time."""
from __future__ import annotations

import selectors
import subprocess
import time


def wait_for_line(p: subprocess.Popen, text: str, timeout: float = 90.0) -> str:
    """Read ``p``'s stderr (text mode) until a line holds ``text``; returns what was read. Fails the
    test when the process ends or ``timeout`` passes first."""
    read = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(p.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = p.stderr.readline()
            if not line:
                raise AssertionError(f"the process ended before logging {text!r}:\n{''.join(read)}")
            read.append(line)
            if text in line:
                return "".join(read)
    raise AssertionError(f"no {text!r} within {timeout:.0f} s:\n{''.join(read)}")

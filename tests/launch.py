"""Run a command that starts several processes (torchrun, accelerate launch, a script), with a timeout
that ends all of them and says which ranks did not exit.

A launcher's own timeout ends the launcher, not its ranks, and torchrun starts every rank in a session
of its own: a rank hung at exit would live on after the test failed. So every process the command starts
carries a marker in its environment; on timeout all processes with the marker are killed, and the
message names the ranks (``RANK`` in their environment) that were still alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

#: Seconds a multi-process launch may take; the slowest one in the suite takes about 30 s.
LAUNCH_TIMEOUT = 120
_MARKER = "AUTODROP_TEST_LAUNCH"


class LaunchTimeout(AssertionError):
    """A launch outlived its timeout; all its processes have been killed."""


def _marked_processes(marker: str) -> dict[int, str | None]:
    """``{pid: RANK or None}`` of the live processes whose environment carries ``marker`` (Linux ``/proc``)."""
    tag = f"{_MARKER}={marker}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie: already dead
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue  # exited meanwhile
        if tag in environment:
            found[int(entry.name)] = next((v[5:].decode() for v in environment if v.startswith(b"RANK=")), None)
    return found


def run_processes(
    command: list[str], env: dict[str, str], timeout: float = LAUNCH_TIMEOUT, started: Path | None = None
) -> subprocess.CompletedProcess:
    """Run ``command`` to completion, or kill every process it started after ``timeout`` seconds and
    raise :class:`LaunchTimeout` naming the ranks that were still running. With ``started`` (a file the
    processes write once running), the ``timeout`` counts from when it exists, after at most
    :data:`LAUNCH_TIMEOUT` seconds of start: a slow start is not taken for a hang."""
    marker = uuid.uuid4().hex
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**env, _MARKER: marker}
    )
    try:
        if started is not None:
            deadline = time.monotonic() + LAUNCH_TIMEOUT
            while not started.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        alive = _marked_processes(marker)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stdout, stderr = process.communicate()
        ranks = sorted({rank for rank in alive.values() if rank is not None})
        stuck = f"rank {', '.join(ranks)} did not exit" if ranks else "no rank had started"
        script = next((Path(part).name for part in command if str(part).endswith(".py")), command[0])
        raise LaunchTimeout(
            f"{script}: timed out after {timeout:g} s: {stuck}; killed its {len(alive)} processes.\n"
            f"{stdout[-2000:]}{stderr[-2000:]}"
        ) from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

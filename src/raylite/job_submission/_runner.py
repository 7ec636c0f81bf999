"""The head's runner of one job's entrypoint: leader of the job's process group, watching its parent.

    supervisor actor (a worker) ─► python _runner.py GRACE_S PARENT_PID SHELL_COMMAND
        (started by path, so it imports only the standard library; its own session and
         process group, stdout and stderr on the job's log file)
      _runner ─► /bin/sh -c SHELL_COMMAND  (same process group; the job's processes all are)
              ─► waits for it and exits as it did (the same code, or the same signal)
      watcher thread: once PARENT_PID (the supervisor's worker) is no longer its parent, the
              job must not outlive it: SIGTERM to the group, GRACE_S s, then SIGKILL to the group.

Stopping a job is the supervisor's SIGTERM (then SIGKILL) to this group; the runner
itself ignores SIGTERM and SIGINT (handlers, not SIG_IGN, so the shell and the job get
the default dispositions) and keeps waiting, so it reports how the job ended. Signals
the worker blocked or ignored are unblocked and reset here first: the job starts with
a clean signal state.
"""
import os
import signal
import subprocess
import sys
import threading
import time

POLL_S = 0.5


def _watch_parent(parent: int, grace: float) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    for sig in (signal.SIGTERM, signal.SIGKILL):  # the supervisor died: end the whole job
        try:
            os.killpg(0, sig)
        except ProcessLookupError:
            return
        time.sleep(grace)


def _ignore(signum, frame) -> None:
    pass


def main(argv: list) -> None:
    grace, parent, command = float(argv[1]), int(argv[2]), argv[3]
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    child = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL)
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    threading.Thread(target=_watch_parent, args=(parent, grace), daemon=True).start()
    code = child.wait()
    sys.stdout.flush()
    if code < 0:  # killed by a signal: end the same way, so the supervisor sees which
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main(sys.argv)

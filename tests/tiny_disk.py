"""A small tmpfs for tests that need a full disk: mounted under a test's tmp_path as root,
skipped otherwise, always unmounted at the end."""
import contextlib
import os
import subprocess
import time

import pytest


@contextlib.contextmanager
def tiny_disk(path, size_mb: int):
    """Mounts a `size_mb` MiB tmpfs at the new directory `path` for the duration."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    os.mkdir(path)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs",
                        str(path)], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    try:
        yield path
    finally:
        for _ in range(50):  # a daemon that is exiting may hold its session dir a moment
            if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(path)], check=True, timeout=30)
            raise AssertionError(f"{path} was still busy at the end of the test")

"""_forks: a forked child is told apart from its parent without a pid syscall, and draws its
own id prefix (ids stay unique across fork)."""
import os
import pickle

from raylite import _forks, _ids


def _in_child(fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, pickle.dumps(fn()))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def test_a_forked_child_has_a_generation_and_an_id_prefix_of_its_own():
    mine = _ids.new_id()
    gen = _forks.current()
    child_gen, child_id, grandchild_gen = _in_child(
        lambda: (_forks.generation, _ids.new_id(), _in_child(lambda: _forks.generation)))
    assert child_gen == gen + 1 and grandchild_gen == gen + 2
    assert child_id[:8] != mine[:8]
    assert _forks.generation == gen and _ids.new_id()[:8] == mine[:8]  # the parent's unchanged

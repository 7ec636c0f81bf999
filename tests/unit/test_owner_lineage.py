"""The owner core's lost objects (_core/owner/lineage.py): a copy elsewhere takes over, a
task's output is rebuilt by running it again (its lost arguments first), else it fails."""
import pickle

from raylite._core.owner import LeaseRequest, Owner, Task
from raylite._object_store.shm import ShmObject
from raylite._protocol import messages as m
from raylite.exceptions import ObjectLostError, ObjectReconstructionFailedError

ME = "me:1"
KEY = (("CPU", 1),)


def owner() -> Owner:
    o = Owner(ME, sys_path=lambda: (), encode_error=pickle.dumps, decode_error=pickle.loads)
    o.tasks.add_function(b"f", b"pickled f")
    return o


def task(n: int, retries: int, inlined=None, arg_ids=None, key=KEY) -> Task:
    tid = bytes([n]) * 4
    msg = m.PushTask(tid, b"f", None, b"args", inlined or {}, (tid + b"r",), "f", b"j", "ns",
                     None, (), {"CPU": 1}, ME, 0)
    t = Task(tid, msg, msg.return_ids, "f", retries, False, [], None, key)
    t.arg_ids = arg_ids
    return t


def at(rid: bytes, node: str) -> ShmObject:
    return ShmObject(rid, 200_000, node, f"{node}:1")


def run(o: Owner, t: Task, node: str, worker: str = "w") -> list:
    """Leases a worker for `t` (unless an idle lease took it already) and completes it with
    an output on `node`."""
    if t.conn is None:
        req = next(r for r, (k, _) in o.tasks.lease_reqs.items() if t in k.queue)
        [(conn, push)] = o.tasks.lease_granted(req, b"L" + t.task_id, (), worker, worker, False)
        assert push.task_id == t.task_id
    worker = t.conn
    out = o.task_done(worker, t.task_id, (at(t.return_ids[0], node),), None, False, 1.0)
    o.tasks.return_idle(now=100.0, older_than=0.0)  # the next run leases a worker again
    return out


def made_on(node: str, retries: int, n: int = 1, o: Owner | None = None) -> tuple:
    """(the owner, task n) once the task ran and its output lives on `node`."""
    o = o or owner()
    t = task(n, retries)
    o.tasks.submit(t)
    run(o, t, node)
    return o, t


def entry(o: Owner, t: Task):
    return o.objects.entries[t.return_ids[0]]


def test_a_lost_output_is_rebuilt_by_running_its_task_again():
    o, t = made_on("B", retries=2)
    assert entry(o, t).ready and entry(o, t).lineage is t and t.task_id not in o.tasks.tasks
    out, changed = o.lineage.lost(frozenset({"B"}))
    assert changed and not entry(o, t).ready and t.task_id in o.tasks.tasks
    assert [type(x) for _, x in out] == [LeaseRequest] and (t.retries, t.attempt) == (1, 1)
    run(o, t, "A", "w2")
    assert entry(o, t).ready and entry(o, t).data.node == "A"
    assert o.lineage.lost(frozenset({"B"})) == ([], False)  # nothing of it there any more


def test_lost_arguments_are_rebuilt_first_recursively():
    """x = f() and y = g(x) both lived on B: f runs again, g waits for x, then runs again."""
    o, tx = made_on("B", retries=1)
    x = tx.return_ids[0]
    ty = task(2, retries=1, inlined={x: (entry(o, tx).data, None)})
    o.tasks.submit(ty)
    run(o, ty, "B")
    out, changed = o.lineage.lost(frozenset({"B"}))
    assert changed and not entry(o, tx).ready and not entry(o, ty).ready
    assert ty.deps == 1 and x not in ty.msg.inlined        # waits for x, not its old copy
    assert len(out) == 1 and out[0][1].req in o.tasks.lease_reqs  # only f asks for a worker
    run(o, tx, "A")                                          # x rebuilt on A: g goes
    assert ty.msg.inlined[x][0].node == "A"
    run(o, ty, "A", "w2")
    assert entry(o, ty).ready and entry(o, ty).data.node == "A"


def test_a_copy_on_a_live_node_takes_over():
    o, t = made_on("B", retries=0)
    assert o.objects.copy_added(t.return_ids[0], "C", "C:1")
    out, changed = o.lineage.lost(frozenset({"B"}))
    assert changed and out == [] and entry(o, t).ready
    assert entry(o, t).data.node == "C" and entry(o, t).copies is None


def test_without_retries_or_lineage_the_object_fails_precisely():
    o, t = made_on("B", retries=0)                           # max_retries=0: no lineage kept
    o.objects.put(b"p" * 8, at(b"p" * 8, "B"), None)         # put() there
    _, keep = made_on("B", retries=1, n=2, o=o)              # retries left, but spent below
    keep.retries = 0
    out, changed = o.lineage.lost(frozenset({"B"}))
    assert changed and out == []
    for rid in (t.return_ids[0], keep.return_ids[0]):
        err = pickle.loads(o.objects.entries[rid].error)
        assert type(err) is ObjectReconstructionFailedError and "cannot be rebuilt" in str(err)
        assert isinstance(err, ObjectLostError)
    err = pickle.loads(o.objects.entries[b"p" * 8].error)
    assert type(err) is ObjectLostError and "made by put()" in str(err)
    assert o.objects.entries[b"p" * 8].data is None          # nothing left to free anywhere


def test_a_rebuild_that_makes_an_output_that_survived_frees_the_new_copy():
    o, t = made_on("B", retries=1)
    rid = t.return_ids[0]
    o.objects.frees.clear()
    o.complete(rid, at(rid, "A"), None)                      # a second result for a ready entry
    assert [f[0] for f in o.objects.frees] == [rid] and entry(o, t).data.node == "B"


def test_tasks_not_pushed_yet_wait_for_a_rebuilt_argument():
    """h(x) was queued (no worker yet) with x's location on B, and k(x, z) waited for z with
    x inlined: once B dies both wait for x's rebuild; k for z too."""
    o, tx = made_on("B", retries=1)
    x = tx.return_ids[0]
    th = task(2, retries=0, inlined={x: (entry(o, tx).data, None)})
    o.tasks.submit(th)                                       # queued: its lease not granted
    tz = task(3, retries=0, key=(("CPU", 2),))               # another queue: it waits there
    o.tasks.submit(tz)
    z = tz.return_ids[0]
    tk = task(4, retries=0, inlined={x: (entry(o, tx).data, None)}, arg_ids=[x, z])
    o.tasks.submit(tk, [z], [x, z])
    assert tk.deps == 1
    o.lineage.lost(frozenset({"B"}))
    assert x not in th.msg.inlined and th.deps == 1 and not any(th in k.queue for k in o.tasks.keys.values())
    assert x not in tk.msg.inlined and tk.deps == 2
    run(o, tx, "A")                                          # x is back: h goes, with it
    assert th.msg.inlined[x][0].node == "A" and th.deps == 0
    assert tk.deps == 1                                      # k still waits for z


def test_a_borrowed_object_on_a_dead_node_is_asked_of_its_owner_again():
    o = owner()
    rid = b"z" * 8
    assert o.objects.ref_created(rid, "owner:1") == "owner:1"      # borrowed
    entry_, ask = o.objects.entry(rid, "owner:1")
    assert ask == "owner:1"
    o.complete(rid, at(rid, "B"), None, owned=False)             # its owner said: on B
    assert not o.objects.refetch(rid, {"C"})                     # B is alive: a real error
    assert o.objects.refetch(rid, {"B"}) and rid not in o.objects.entries
    assert o.objects.entry(rid, "owner:1")[1] == "owner:1"       # the next read asks again
    assert o.objects.owner_of(rid) == "owner:1"                  # still counted as borrowed

"""Locality-aware leasing (raylite._core.owner.locality, pure): a task's lease request goes
first to the node holding the most bytes of its arguments; the owner core queues such a
task on its key and that node, and asks that node's daemon."""
from raylite._core.owner import DAEMON, LeaseRequest, LeaseReturn, Owner, Task
from raylite._core.owner.locality import arg_holders, preferred
from raylite._object_store.shm import ShmObject
from raylite._protocol import messages as m

HERE, B, C = "aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"
AT = {HERE: "10.0.0.1:6380", B: "10.0.0.2:6380", C: "10.0.0.3:6380"}


def on(*nodes: str) -> tuple:
    return tuple((n, AT[n]) for n in nodes)


def test_the_node_with_most_bytes_wins_counting_each_node_once_per_argument():
    assert preferred([(100, on(B)), (50, on(C)), (60, on(C))], HERE) == AT[C]
    assert preferred([(100, on(B, B, B)), (60, on(C))], HERE) == AT[B]   # a node counts once
    assert preferred([(100, on(B, C)), (60, on(C))], HERE) == AT[C]      # copies count too


def test_our_node_is_named_by_empty_and_wins_ties():
    assert preferred([], HERE) == ""
    assert preferred([(100, on(HERE))], HERE) == ""
    assert preferred([(100, on(HERE)), (100, on(B))], HERE) == ""        # a tie: stay
    assert preferred([(100, on(HERE)), (101, on(B))], HERE) == AT[B]
    assert preferred([(100, on(C)), (100, on(B))], HERE) == AT[B]        # a tie elsewhere: by tag


def test_a_node_whose_daemon_address_is_unknown_cannot_be_asked():
    assert preferred([(500, ((B, ""),)), (100, on(C))], HERE) == AT[C]
    assert preferred([(500, ((B, ""),))], HERE) == ""
    assert preferred([(500, ((HERE, ""),)), (100, on(C))], HERE) == ""  # ours needs no address


def test_arg_holders_reads_values_copies_and_the_argument_blob():
    class Entry:
        copies = {C: AT[C]}

    blob = ShmObject(b"blob", 300, HERE, AT[HERE])
    inlined = {b"x": (ShmObject(b"x", 1000, B, AT[B]), None), b"small": (b"inline", None),
               b"err": (None, b"pickled error")}
    assert arg_holders(blob, inlined, {b"x": Entry()}) == [(300, on(HERE)), (1000, on(B, C))]
    assert arg_holders(b"pickled args", {}, {}) == []


ME = "me:1"


def owner() -> Owner:
    o = Owner(ME, sys_path=lambda: ())
    o.tasks.add_function(b"f", b"pickled f")
    o.tasks.node = HERE
    return o


def task(n: int, arg: ShmObject | None, locality: bool = True, strategy: tuple = ()) -> Task:
    tid = bytes([n]) * 4
    inlined = {b"arg": (arg, None)} if arg is not None else {}
    msg = m.PushTask(tid, b"f", None, b"args", inlined, (tid + b"r",), "f", b"j", "ns", None,
                     (), {"CPU": 1}, ME, 0)
    return Task(tid, msg, msg.return_ids, "f", 0, False, [], None, ((("CPU", 1),), strategy),
                strategy, locality=locality)


def test_a_task_whose_argument_lives_on_b_asks_bs_daemon_and_returns_the_lease_there():
    o = owner()
    big_on_b = ShmObject(b"arg", 64 << 20, B, AT[B])
    t = task(1, big_on_b)
    [(target, req)] = o.tasks.submit(t)
    assert target is DAEMON and req == LeaseRequest(1, {"CPU": 1}, "f", (), False, AT[B])
    [(conn, push)] = o.tasks.lease_granted(req.req, b"L", (), "w-on-b", "w-on-b", False)
    assert conn == "w-on-b" and push.task_id == t.task_id
    o.task_done("w-on-b", t.task_id, (b"r",), None, False, now=1.0)
    assert o.tasks.return_idle(now=2.0, older_than=0.2) == [(DAEMON, LeaseReturn(b"L", False,
                                                                                 AT[B]))]


def test_leases_by_locality_are_not_shared_with_the_same_function_elsewhere():
    o = owner()
    out = o.tasks.submit(task(1, ShmObject(b"arg", 1 << 20, B, AT[B])))
    out += o.tasks.submit(task(2, None))                       # no large argument: our daemon
    out += o.tasks.submit(task(3, ShmObject(b"arg", 1 << 20, HERE, AT[HERE])))  # ours too
    assert [r.daemon for _, r in out] == [AT[B], "", ""]
    assert len(o.tasks.keys) == 2                              # tasks 2 and 3 share a key


def test_only_the_default_strategy_follows_its_arguments():
    o = owner()
    big_on_b = ShmObject(b"arg", 64 << 20, B, AT[B])
    [(_, spread)] = o.tasks.submit(task(1, big_on_b, locality=False, strategy=("SPREAD",)))
    assert spread.daemon == "" and spread.strategy == ("SPREAD",)
    local = Owner(ME)                                          # no node (local mode): no locality
    local.tasks.add_function(b"f", b"pickled f")
    [(_, req)] = local.tasks.submit(task(2, big_on_b))
    assert req.daemon == ""


def test_a_spilled_request_from_the_preferred_node_goes_on_and_cancel_finds_the_task():
    o = owner()
    t = task(1, ShmObject(b"arg", 1 << 20, B, AT[B]))
    [(_, req)] = o.tasks.submit(t)
    [(_, again)] = o.tasks.lease_spilled(req.req, AT[C], False)    # B was busy: C has room
    assert again.daemon == AT[C] and again.spilled
    assert o.tasks.unqueue(t) is True

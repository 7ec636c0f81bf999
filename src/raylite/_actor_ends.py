"""Why an actor ended on purpose, in the words every process uses (a leaf module).

Callers read it as "The actor Foo is dead: <why>."; a crash reads "... died: its
worker process exited unexpectedly ..." instead. The driver's runtimes, the
worker hosting the actor and the node daemon (which ends the actors of a
process that exited) all say it the same way.
"""
from __future__ import annotations

EXITED = "it called exit_actor()"
TERMINATED = "it was terminated with __ray_terminate__"
UNREFERENCED = "its last handle went out of scope"   # __ray_terminate__'s argument when so
KILLED = "ray.kill() was called on it"


def owner_exited(who: str) -> str:
    """Why a non-detached actor died with `who`, the process or actor that created it."""
    return (f"its owner, {who}, exited, and a non-detached actor lives only as long as its "
            "owner (create it with lifetime=\"detached\" to let it outlive its creator)")

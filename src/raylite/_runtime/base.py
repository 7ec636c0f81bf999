"""Runtime: the one interface every concrete runtime implements.

The public API layer turns user calls into these methods; LocalRuntime runs
them in the calling process, ClusterRuntime across processes. Options
arrive already validated (frozen records from _options).
"""
from __future__ import annotations

import abc
from typing import Any, NamedTuple, Sequence, TYPE_CHECKING

from .object_ref import ObjectRef

if TYPE_CHECKING:
    import concurrent.futures


class ActorMeta(NamedTuple):
    """What a handle needs to know about an actor's class (plain, picklable data)."""
    class_name: str
    methods: dict  # name -> _options.MethodOptions
    is_async: bool
    groups: tuple = ()  # the names of its concurrency groups


class ContextInfo(NamedTuple):
    """What get_runtime_context() reports."""
    job_id: str
    node_id: str
    worker_id: str
    namespace: str
    task_id: str | None = None
    actor_id: str | None = None
    actor_name: str | None = None
    assigned_resources: dict = {}  # never mutated
    gpu_ids: tuple = ()
    was_restarted: bool = False
    task_name: str | None = None
    task_function_name: str | None = None
    runtime_env: dict | None = None  # the running task's or actor's runtime_env, as given


class InitInfo(NamedTuple):
    """What init() reports back (the context object is built from it)."""
    address: str
    node_id: str
    namespace: str
    session_dir: str | None
    mode: str


class Runtime(abc.ABC):
    """Submit tasks, create and call actors, put/get/wait objects, shut down."""

    name: str = "abstract"
    job_runtime_env: dict | None = None  # the runtime_env init() got (set by init)

    # -- lifecycle -----------------------------------------------------------
    @abc.abstractmethod
    def info(self) -> InitInfo: ...

    @abc.abstractmethod
    def shutdown(self) -> None: ...

    # -- tasks and actors ----------------------------------------------------
    @abc.abstractmethod
    def submit_task(self, function: Any, args: tuple, kwargs: dict, options: Any) -> list[ObjectRef]: ...

    @abc.abstractmethod
    def create_actor(self, actor_class: Any, args: tuple, kwargs: dict, options: Any) -> tuple[bytes, ActorMeta]:
        """Returns (actor id, meta); with get_if_exists, those of the existing actor."""

    @abc.abstractmethod
    def submit_actor_task(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                          options: Any) -> list[ObjectRef]: ...

    @abc.abstractmethod
    def get_named_actor(self, name: str, namespace: str | None) -> tuple[bytes, ActorMeta]: ...

    def named_actors(self) -> list[tuple[str, str]]:
        """(namespace, name) of every named actor that is not dead, in every namespace."""
        return [(a.namespace, a.name) for a in self.state().actors
                if a.name and a.state != "DEAD"]

    @abc.abstractmethod
    def actor_meta(self, actor_id: bytes) -> ActorMeta:
        """The method table of a live actor (for get_runtime_context().current_actor)."""

    @abc.abstractmethod
    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None: ...

    @abc.abstractmethod
    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None: ...

    # -- objects -------------------------------------------------------------
    @abc.abstractmethod
    def put(self, value: Any) -> ObjectRef: ...

    @abc.abstractmethod
    def get(self, refs: Sequence[ObjectRef], timeout: float | None) -> list: ...

    @abc.abstractmethod
    def wait(self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]: ...

    @abc.abstractmethod
    def future(self, ref: ObjectRef) -> concurrent.futures.Future: ...

    def submit_stream(self, function: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """A generator task (num_returns "streaming" or "dynamic"): an ObjectRefGenerator (or,
        for "dynamic", one ref to a DynamicObjectRefGenerator). streams.py has both shells'."""
        raise NotImplementedError(f"The {self.name} runtime does not run generator tasks.")

    def submit_actor_stream(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                            options: Any) -> Any:
        """A generator actor method's call, as submit_stream."""
        raise NotImplementedError(f"The {self.name} runtime does not run generator tasks.")

    def ref_task_id(self, ref: ObjectRef) -> bytes | None:
        """The id of the task that made `ref`'s object, when this process owns it and knows."""
        core = getattr(self, "_core", None)
        o = core.objects.entries.get(ref._id) if core is not None else None
        return getattr(o, "task_id", None)

    def ref_created(self, ref: ObjectRef) -> None:
        """A new ObjectRef instance exists in this process (counts one local reference)."""

    def ref_deleted(self, id: bytes) -> None:
        """An ObjectRef instance was garbage-collected."""

    def handle_created(self, actor_id: bytes) -> None:
        """An ActorHandle instance exists in this process."""

    def handle_deleted(self, actor_id: bytes) -> None:
        """An ActorHandle instance was garbage-collected. When the creator's last handle
        goes (and no copy left the process), the actor ends after its pending calls."""

    def handle_escaped(self, actor_id: bytes) -> None:
        """A handle was pickled: another process may use the actor from now on."""

    # -- placement groups (raylite.util.placement_group) ----------------------------
    def create_placement_group(self, group_id: bytes, bundles: list, strategy: str, name: str,
                               detached: bool) -> bytes | None:
        """Asks for a group (bundles and strategy checked by the caller); returns at once,
        None, or the id the runtime gave the group instead of `group_id` (the ray runtime's).
        ValueError when the name is taken in this namespace. A group that cannot be placed
        stays pending, and a warning is printed once."""
        raise NotImplementedError(f"placement groups are not supported by the {self.name} runtime")

    def remove_placement_group(self, group_id: bytes) -> None:
        raise NotImplementedError(f"placement groups are not supported by the {self.name} runtime")

    def placement_groups(self, group_id: bytes | None, name: str | None) -> tuple:
        """PlacementGroupRecords: the group of that id, or of that name in this namespace,
        or (neither given) every group."""
        raise NotImplementedError(f"placement groups are not supported by the {self.name} runtime")

    def placement_group_ready(self, group_id: bytes, value: Any) -> ObjectRef | None:
        """An ObjectRef resolved to `value` once the group is reserved; None when the runtime
        has nothing better than a task in the group (which runs once it is reserved)."""
        return None

    # -- cluster state -------------------------------------------------------
    @abc.abstractmethod
    def nodes(self) -> list[dict]: ...

    @abc.abstractmethod
    def cluster_resources(self) -> dict: ...

    @abc.abstractmethod
    def available_resources(self) -> dict: ...

    @abc.abstractmethod
    def context(self) -> ContextInfo: ...

    def is_cancelled(self, task_id: bytes) -> bool:
        """Whether cancel() was called on the task `task_id` while this process runs it."""
        return False

    def task_events(self, request: Any, timeout: float) -> Any:
        """The task-event store's answer (messages.TaskEventsReply) to `request` (a
        messages.GetTaskEvents): this process's own pending events are in it."""
        raise NotImplementedError(f"the {self.name} runtime keeps no task events")

    @abc.abstractmethod
    def state(self) -> Any:
        """Everything the runtime knows, as one _core.records.StateSnapshot: nodes, jobs,
        workers, leases, actors, the tasks in flight and the objects held."""

    def progress(self, state: Any) -> None:
        """A progress bar's new state (progress.BarState) from this process: drawn here (local
        mode, a driver); a cluster worker sends it to its job's driver instead."""
        from .progress import display

        display().update(state)

"""Task, actor and method options: one declarative table, validated once.

`@remote(...)` and `.options(...)` pass their keywords through `validate()`;
an unknown key or a bad value raises an error that lists what is valid.
What travels afterwards is a frozen `TaskOptions` / `ActorOptions`, never a
dict, so the hot path does no checking.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, NamedTuple

from ._resources import describe, fits, in_group

_RUNTIME_ENV_KEYS = {"env_vars", "config"}


def _nonneg(name: str, v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or v < 0:
        raise ValueError(f"{name} must be a number >= 0, got {v!r}.")
    return v


def _int_at_least(lo: int) -> Callable[[str, Any], Any]:
    def check(name: str, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}.")
        return v
    return check


def _bool(name: str, v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValueError(f"{name} must be True or False, got {v!r}.")
    return v


def _opt_str(name: str, v: Any) -> Any:
    if v is not None and not isinstance(v, str):
        raise ValueError(f"{name} must be a string, got {v!r}.")
    return v


def _resources(name: str, v: Any) -> Any:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ValueError(f"resources must be a dict of name -> amount, got {v!r}.")
    for k, amount in v.items():
        if not isinstance(k, str):
            raise ValueError(f"resource names must be strings, got {k!r}.")
        if k in ("CPU", "GPU"):
            raise ValueError(f"Use the num_cpus and num_gpus options, not resources={{'{k}': ...}}.")
        _nonneg(f"resources[{k!r}]", amount)
    return dict(v)


def _num_returns(name: str, v: Any) -> Any:
    if v in ("dynamic", "streaming"):
        raise ValueError(f"num_returns={v!r} (generators) is not supported by raylite yet; "
                         "return a list instead.")
    return _int_at_least(0)(name, v)


def _retry_exceptions(name: str, v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, (list, tuple)) and all(isinstance(t, type) and issubclass(t, BaseException)
                                            for t in v):
        return tuple(v)
    raise ValueError(f"retry_exceptions must be a bool or a list of exception types, got {v!r}.")


def validate_runtime_env(v: Any) -> dict | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ValueError(f"runtime_env must be a dict, got {v!r}.")
    unknown = set(v) - _RUNTIME_ENV_KEYS
    if unknown:
        raise ValueError(f"runtime_env keys {sorted(unknown)} are not supported by raylite yet; "
                         f"supported: {sorted(_RUNTIME_ENV_KEYS)}. Install packages and files on "
                         "every node instead.")
    env_vars = v.get("env_vars", {})
    if not isinstance(env_vars, dict) or not all(isinstance(k, str) and isinstance(x, str)
                                                  for k, x in env_vars.items()):
        raise ValueError(f"runtime_env['env_vars'] must be a dict of str -> str, got {env_vars!r}.")
    return {"env_vars": dict(env_vars), **({"config": v["config"]} if "config" in v else {})}


def _runtime_env(name: str, v: Any) -> Any:
    return validate_runtime_env(v)


def _lifetime(name: str, v: Any) -> Any:
    if v not in (None, "detached", "non_detached"):
        raise ValueError(f"lifetime must be None, 'detached' or 'non_detached', got {v!r}.")
    return None if v == "non_detached" else v


def _scheduling_strategy(name: str, v: Any) -> Any:
    if v is None or isinstance(v, str) and v in ("DEFAULT", "SPREAD") or placement(v) is not None:
        return v
    if callable(getattr(v, "_wire", None)):  # raylite.util.scheduling_strategies' classes
        v._wire()  # checks it once
        return v
    raise ValueError(f"scheduling_strategy must be None, 'DEFAULT', 'SPREAD' or a strategy from "
                     f"raylite.util.scheduling_strategies (NodeAffinitySchedulingStrategy, "
                     f"PlacementGroupSchedulingStrategy), got {v!r}.")


def strategy_wire(v: Any) -> tuple:
    """A validated scheduling_strategy in the form lease requests and actor specs carry:
    () for the default and for a placement group (its bundle is named by the demand, renamed
    into the bundle's resources: only the nodes holding it have them), ("SPREAD",), or what
    the strategy object's _wire() says."""
    if v is None or v == "DEFAULT" or placement(v) is not None:
        return ()
    if v == "SPREAD":
        return ("SPREAD",)
    return v._wire()


def placement(strategy: Any) -> tuple | None:
    """(group id, bundle index, capture child tasks) of a PlacementGroupSchedulingStrategy
    (util/scheduling_strategies.py; read by its `_placement`), else None."""
    return getattr(strategy, "_placement", None) if strategy is not None and \
        not isinstance(strategy, str) else None


class Captured(NamedTuple):
    """The strategy of a task or actor created, without one of its own, by a task or actor
    whose placement group captures child tasks: any bundle of the same group (and it
    captures its own children in turn)."""
    group: bytes

    @property
    def _placement(self) -> tuple:
        return (self.group, -1, True)


_captured: dict = {}   # (id(options), group) -> (options, the same in the group)


def captured(options: Any, current: tuple | None) -> Any:
    """`options` (which name no strategy) as they run when created inside `current`, the
    creator's (group id, bundle index, capture): in that group when it captures children."""
    if current is None or not current[2]:
        return options
    key = (id(options), current[0])
    hit = _captured.get(key)
    if hit is None or hit[0] is not options:
        if len(_captured) >= 1024:
            _captured.clear()
        hit = _captured[key] = (options, options._replace(scheduling_strategy=Captured(current[0])))
    return hit[1]


def _placed(demand: dict, strategy: Any) -> dict:
    """`demand` renamed into its placement group's bundle, when the strategy names one;
    ValueError when the group's bundles are known and it fits none of them (the bundle
    named, or any bundle for index -1): it could never run."""
    p = placement(strategy)
    if p is None:
        return demand
    bundles = getattr(strategy, "_bundles", None)
    if bundles is not None:
        some = [bundles[p[1]]] if 0 <= p[1] < len(bundles) else bundles
        if not any(fits(demand, b) for b in some):
            which = f"bundle {p[1]}" if p[1] >= 0 else "any bundle"
            raise ValueError(f"The demand {describe(demand)} cannot fit into {which} of placement "
                             f"group {p[0].hex()} (bundles: "
                             f"{', '.join(describe(b) for b in bundles)}); it could never run. "
                             "Ask for less, or make a group with bigger bundles.")
    return in_group(demand, p[0].hex(), p[1])


def _concurrency_groups(name: str, v: Any) -> Any:
    if v is None:
        return None
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(n, int) and n >= 1
                                          for k, n in v.items()):
        raise ValueError(f"concurrency_groups must be a dict of name -> int >= 1, got {v!r}.")
    return dict(v)


class _Opt(NamedTuple):
    check: Callable[[str, Any], Any]
    task: bool = False
    actor: bool = False
    method: bool = False


# The one table. A key valid for tasks, actors and/or actor methods.
OPTIONS: dict[str, _Opt] = {
    "num_cpus": _Opt(_nonneg, task=True, actor=True),
    "num_gpus": _Opt(_nonneg, task=True, actor=True),
    "resources": _Opt(_resources, task=True, actor=True),
    "memory": _Opt(_nonneg, task=True, actor=True),
    "accelerator_type": _Opt(_opt_str, task=True, actor=True),
    "runtime_env": _Opt(_runtime_env, task=True, actor=True),
    "scheduling_strategy": _Opt(_scheduling_strategy, task=True, actor=True),
    "name": _Opt(_opt_str, task=True, actor=True, method=True),
    "num_returns": _Opt(_num_returns, task=True, method=True),
    "max_retries": _Opt(_int_at_least(-1), task=True),
    "retry_exceptions": _Opt(_retry_exceptions, task=True, method=True),
    "max_calls": _Opt(_int_at_least(0), task=True),
    "namespace": _Opt(_opt_str, actor=True),
    "lifetime": _Opt(_lifetime, actor=True),
    "max_restarts": _Opt(_int_at_least(-1), actor=True),
    "max_task_retries": _Opt(_int_at_least(-1), actor=True, method=True),
    "max_concurrency": _Opt(_int_at_least(1), actor=True),
    "max_pending_calls": _Opt(_int_at_least(-1), actor=True),
    "get_if_exists": _Opt(_bool, actor=True),
    "concurrency_groups": _Opt(_concurrency_groups, actor=True),
    "concurrency_group": _Opt(_opt_str, method=True),
    "enable_task_events": _Opt(_bool, task=True, method=True),
}


def validate(kind: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Checks options for kind 'task', 'actor' or 'method'; returns the cleaned dict."""
    out = {}
    for key, value in kwargs.items():
        opt = OPTIONS.get(key)
        if opt is None or not getattr(opt, kind):
            valid = sorted(k for k, o in OPTIONS.items() if getattr(o, kind))
            raise ValueError(f"Invalid option {key!r} for {'an actor method' if kind == 'method' else 'a ' + kind}. "
                             f"Valid options: {', '.join(valid)}.")
        out[key] = opt.check(key, value)
    if kind == "actor" and out.get("get_if_exists") and not out.get("name"):
        raise ValueError("get_if_exists=True needs a name: pass name='...' too.")
    if kind == "actor" and out.get("lifetime") == "detached" and not out.get("name"):
        raise ValueError("A detached actor must be named (name='...') so a later driver can find it.")
    return out


class TaskOptions(NamedTuple):
    num_cpus: float = 1
    num_gpus: float = 0
    resources: dict = {}  # never mutated
    memory: float = 0
    accelerator_type: str | None = None
    runtime_env: dict | None = None
    scheduling_strategy: Any = None
    name: str | None = None
    num_returns: int = 1
    max_retries: int = 3
    retry_exceptions: Any = False
    max_calls: int = 0
    enable_task_events: bool = True

    def demand(self) -> dict[str, float]:
        """The resources one run holds, as {name: amount} without zeros (renamed into its
        placement group's bundle when it runs in one: _resources.in_group)."""
        return _placed(_demand(self.num_cpus, self.num_gpus, self.memory, self.resources,
                               self.accelerator_type), self.scheduling_strategy)


class ActorOptions(NamedTuple):
    num_cpus: float | None = None  # None: needs 1 CPU to place, holds 0 while alive (Ray's rule)
    num_gpus: float = 0
    resources: dict = {}  # never mutated
    memory: float = 0
    accelerator_type: str | None = None
    runtime_env: dict | None = None
    scheduling_strategy: Any = None
    name: str | None = None
    namespace: str | None = None
    lifetime: str | None = None
    max_restarts: int = 0
    max_task_retries: int = 0
    max_concurrency: int | None = None
    max_pending_calls: int = -1
    get_if_exists: bool = False
    concurrency_groups: dict | None = None

    def demand(self) -> dict[str, float]:
        """The resources the actor holds while alive (renamed into its placement group's
        bundle when it runs in one)."""
        return _placed(_demand(self.num_cpus or 0, self.num_gpus, self.memory, self.resources,
                               self.accelerator_type), self.scheduling_strategy)

    def placement_demand(self) -> dict[str, float]:
        """What a node must have to host it (at least 1 CPU when num_cpus is unset; in a
        placement group, what it holds: the bundle is what was reserved for it)."""
        if placement(self.scheduling_strategy) is not None:
            return self.demand()
        return _demand(1 if self.num_cpus is None else self.num_cpus, self.num_gpus,
                       self.memory, self.resources, self.accelerator_type)


class MethodOptions(NamedTuple):
    num_returns: int = 1
    name: str | None = None
    retry_exceptions: Any = False
    max_task_retries: int | None = None
    concurrency_group: str | None = None
    enable_task_events: bool = True


def _demand(cpus: float, gpus: float, memory: float, resources: dict,
            accelerator_type: str | None = None) -> dict[str, float]:
    d = {"CPU": cpus, "GPU": gpus, "memory": memory, **resources}
    if accelerator_type:  # Ray's rule: a node offers "accelerator_type:<type>" when it has one
        d[f"accelerator_type:{accelerator_type}"] = 0.001
    return {k: v for k, v in d.items() if v}


# Keys only the decorator may set (Ray's rule): max_calls is part of the function a worker
# loads, concurrency_groups of the actor's threads and loops, fixed when it starts.
_DECORATOR_ONLY = {"task": "max_calls", "actor": "concurrency_groups"}


def merge(base: Any, kind: str, kwargs: dict[str, Any]) -> Any:
    """A copy of frozen options `base` with validated `kwargs` applied (for .options())."""
    key = _DECORATOR_ONLY.get(kind)
    if key in kwargs:
        raise ValueError(f"Setting {key!r} is not supported in '.options()': pass it to "
                         f"@remote({key}=...) instead.")
    return base._replace(**validate(kind, kwargs))


def check_concurrency_group(group: str | None, groups: Any, where: str) -> None:
    """ValueError unless `group` is None or one of the actor's concurrency `groups`."""
    if group is not None and group not in (groups or ()):
        have = ", ".join(repr(g) for g in groups) if groups else "none"
        raise ValueError(f"{where} names concurrency group {group!r}, which the actor does not "
                         f"define (its concurrency_groups: {have}). Add it to "
                         "@remote(concurrency_groups={...}) or fix the name.")

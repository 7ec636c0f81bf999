"""raylite's public surface is Ray's core names, nothing more (httpx/trio style)."""
import raylite
import raylite.exceptions

# ray.__all__ of Ray 2.60.0, recorded once so this test needs no Ray install.
RAY_ALL = {
    "ActorClassID", "ActorID", "ClientBuilder", "DynamicObjectRefGenerator", "FunctionID", "JobID",
    "Language", "LoggingConfig", "NodeID", "ObjectID", "ObjectRef", "ObjectRefGenerator",
    "PlacementGroupID", "SCRIPT_MODE", "TaskID", "UniqueID", "WORKER_MODE", "WorkerID",
    "__version__", "_config", "actor", "autoscaler", "available_resources", "cancel", "client",
    "cluster_resources", "cpp_function", "data", "get", "get_actor", "get_gpu_ids",
    "get_runtime_context", "init", "internal", "is_initialized", "java_actor_class",
    "java_function", "kill", "method", "nodes", "put", "remote", "shutdown", "timeline", "util",
    "wait", "widgets", "workflow",
}
RAY_SUBMODULES = {"actor", "exceptions", "util", "__version__"}  # Ray's core submodules
# Every exception class in ray.exceptions of Ray 2.60.0.
RAY_EXCEPTIONS = {
    "ActorAlreadyExistsError", "ActorDiedError", "ActorHandleNotFoundError",
    "ActorPlacementGroupRemoved", "ActorUnavailableError", "ActorUnschedulableError",
    "AsyncioActorExit", "AuthenticationError", "CrossLanguageError", "GetTimeoutError",
    "LocalRayletDiedError", "NodeDiedError", "ObjectFetchTimedOutError", "ObjectFreedError",
    "ObjectLostError", "ObjectReconstructionFailedError", "ObjectRefStreamEndOfStreamError",
    "ObjectStoreFullError", "OufOfBandObjectRefSerializationException", "OutOfDiskError",
    "OutOfMemoryError", "OwnerDiedError", "PendingCallsLimitExceeded",
    "PlasmaObjectNotAvailable", "RayActorError", "RayCgraphCapacityExceeded", "RayChannelError",
    "RayChannelTimeoutError", "RayDirectTransportError", "RayError", "RaySystemError",
    "RayTaskError", "ReferenceCountingAssertionError", "RpcError", "RuntimeEnvSetupError",
    "StreamingGeneratorReplayInconsistentError", "TaskCancelledError", "TaskPlacementGroupRemoved",
    "TaskUnschedulableError", "UnserializableException", "UserCodeException",
    "WorkerCrashedError",
}
# Ray's tree, where raylite has both ends: subclass -> its Ray base class.
RAY_BASES = {
    "RayTaskError": "RayError", "RayActorError": "RayError", "ActorDiedError": "RayActorError",
    "ActorUnavailableError": "RayActorError", "ObjectLostError": "RayError",
    "OwnerDiedError": "ObjectLostError", "GetTimeoutError": "RayError",
    "TaskCancelledError": "RayError", "WorkerCrashedError": "RayError",
    "ObjectFetchTimedOutError": "ObjectLostError", "ObjectFreedError": "ObjectLostError",
    "ObjectReconstructionFailedError": "ObjectLostError",
    "ReferenceCountingAssertionError": "ObjectLostError", "RayChannelError": "RaySystemError",
    "RayChannelTimeoutError": "RayChannelError", "RayCgraphCapacityExceeded": "RaySystemError",
    "RayDirectTransportError": "RaySystemError",
}
# Ray's classes that are also a builtin exception, so `except TimeoutError:` and the like work.
RAY_BUILTIN_BASES = {
    "GetTimeoutError": TimeoutError, "RayChannelTimeoutError": TimeoutError,
    "ReferenceCountingAssertionError": AssertionError, "ActorAlreadyExistsError": ValueError,
}
EXPECTED = {
    "ActorClassID", "ActorID", "FunctionID", "JobID", "NodeID", "ObjectID", "PlacementGroupID",
    "TaskID", "UniqueID", "WorkerID", "ObjectRef", "__version__", "actor", "available_resources", "cancel", "cluster_resources",
    "exceptions", "get", "get_actor", "get_gpu_ids", "get_runtime_context", "init",
    "is_initialized", "kill", "method", "nodes", "put", "remote", "shutdown", "timeline", "util",
    "wait",
}


def test_all_is_sorted_and_expected():
    assert raylite.__all__ == sorted(raylite.__all__)
    assert set(raylite.__all__) == EXPECTED


def test_every_name_is_rays():
    assert set(raylite.__all__) <= RAY_ALL | RAY_SUBMODULES


def test_every_name_exists():
    for name in raylite.__all__:
        assert hasattr(raylite, name), name


def test_exceptions_match_rays_names():
    assert raylite.exceptions.__all__ == sorted(raylite.exceptions.__all__)
    assert set(raylite.exceptions.__all__) <= RAY_EXCEPTIONS
    for name in raylite.exceptions.__all__:
        assert issubclass(getattr(raylite.exceptions, name), raylite.exceptions.RayError), name


def test_exception_tree_follows_rays():
    ex = raylite.exceptions
    for sub, base in RAY_BASES.items():
        if sub in ex.__all__ and base in ex.__all__:
            assert issubclass(getattr(ex, sub), getattr(ex, base)), (sub, base)


def test_every_ray_exception_exists():
    assert set(raylite.exceptions.__all__) == RAY_EXCEPTIONS


def test_exceptions_are_also_the_builtins_ray_makes_them():
    for name, builtin in RAY_BUILTIN_BASES.items():
        assert issubclass(getattr(raylite.exceptions, name), builtin), name


def test_public_paths_as_in_ray():
    assert raylite.actor.ActorHandle and raylite.util.ActorPool

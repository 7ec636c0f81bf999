"""Ray's exceptions raised where Ray raises them, init()'s presentation keywords, and the
option keys Ray refuses, on every runtime."""
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

import raylite
from raylite import exceptions


def test_a_taken_actor_name_is_actor_already_exists_error(ray):
    @ray.remote
    class A:
        pass

    a = A.options(name="only").remote()
    with pytest.raises(exceptions.ActorAlreadyExistsError, match="already (exists|taken)"):  # Ray: taken
        A.options(name="only").remote()
    with pytest.raises(ValueError):  # what Ray raised before the class existed
        A.options(name="only").remote()
    assert A.options(name="only", get_if_exists=True).remote() == a


def test_actor_errors_carry_rays_attributes(ray):
    @ray.remote
    class Broken:
        def __init__(self):
            raise KeyError("no")

        def f(self):
            pass

    with pytest.raises(exceptions.ActorDiedError) as info:
        ray.get(Broken.remote().f.remote())
    err = info.value
    assert err.actor_init_failed and not err.preempted and err.error_msg == str(err)


class NeedsTwo(Exception):
    """Pickles, but cannot be rebuilt: its args hold one value, its __init__ needs two."""

    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")


@pytest.mark.raylite_only("Ray's UnserializableException is not a RayTaskError; raylite's is both")
@pytest.mark.cluster_only("the error never leaves the process, so nothing is rebuilt")
def test_an_exception_the_caller_cannot_rebuild_is_unserializable_exception(ray):
    @ray.remote
    def fails():
        raise NeedsTwo(1, 2)

    with pytest.raises(exceptions.UnserializableException) as info:
        ray.get(fails.remote())
    assert isinstance(info.value, exceptions.RayTaskError)
    assert "NeedsTwo: 1 and 2" in str(info.value.cause)  # the remote traceback is kept


@pytest.mark.raylite_only("Ray has no cluster token")
@pytest.mark.cluster_only("local mode has no cluster token")
def test_a_wrong_cluster_token_is_authentication_error(ray):
    address = raylite._runtime.current().info().address
    code = textwrap.dedent(f"""
        import raylite
        try:
            raylite.init(address={address!r})
        except raylite.exceptions.AuthenticationError as e:
            print("refused", isinstance(e, ConnectionError), isinstance(e, raylite.exceptions.RayError))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, RAYLITE_CLUSTER_TOKEN="00" * 32))
    assert out.stdout.strip() == "refused True True", out.stderr


@pytest.mark.cluster_only("a second driver joins the cluster")
def test_ray_address_is_read_when_raylites_is_unset(ray):
    address = raylite._runtime.current().info().address
    code = "import raylite\nprint(raylite.init().address)\nraylite.shutdown()\n"
    env = {k: v for k, v in os.environ.items() if k != "RAYLITE_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(env, RAY_ADDRESS=address))
    assert out.stdout.strip() == address, out.stderr


def test_presentation_keywords_are_accepted_with_one_note(runtime_kwargs, monkeypatch):
    monkeypatch.setattr(raylite._api, "_noted", set())
    with pytest.warns(UserWarning, match="ignores include_dashboard, dashboard_port.*no dashboard"):
        raylite.init(include_dashboard=True, dashboard_port=8265, dashboard_host="0.0.0.0",
                     logging_format="%(message)s", enable_task_events=False,
                     _system_config={}, **runtime_kwargs)
    raylite.shutdown()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # noted once per process: no second warning
        raylite.init(include_dashboard=True, dashboard_port=8265, **runtime_kwargs)
        raylite.shutdown()
        raylite.init(include_dashboard=False, enable_task_events=False, **runtime_kwargs)
    with pytest.raises(RuntimeError, match="Unknown keyword argument.*_plasma_directory"):
        raylite.init(_plasma_directory="/x", ignore_reinit_error=True)


def test_keys_ray_refuses_in_options_are_refused(ray):
    @ray.remote(max_calls=2)
    def f():
        return 1

    @ray.remote(concurrency_groups={"io": 2})
    class A:
        @ray.method(concurrency_group="io")
        def read(self):
            return "read"

    with pytest.raises(ValueError, match="'max_calls' is not supported in '.options\\(\\)'"):
        f.options(max_calls=1)
    with pytest.raises(ValueError, match="'concurrency_groups' is not supported in '.options"):
        A.options(concurrency_groups={"io": 1})
    assert ray.get(f.options(num_cpus=0.5).remote()) == 1
    a = A.options(name="a").remote()
    assert ray.get(a.read.options(concurrency_group="io").remote()) == "read"


def test_an_unknown_concurrency_group_is_value_error(ray):
    class Wrong:
        @ray.method(concurrency_group="compute")
        def f(self):
            pass

    with pytest.raises(ValueError, match="Wrong.f names concurrency group 'compute'.*'io'"):
        ray.remote(concurrency_groups={"io": 1})(Wrong)
    with pytest.raises(ValueError, match="concurrency group 'compute'.*none"):
        ray.remote(Wrong)

    @ray.remote(concurrency_groups={"io": 1})
    class Right:
        def f(self):
            return 1

    r = Right.remote()
    with pytest.raises(ValueError, match="Right.f.options\\(\\) names concurrency group 'nope'"):
        r.f.options(concurrency_group="nope")
    assert ray.get(r.f.options(concurrency_group="io").remote()) == 1

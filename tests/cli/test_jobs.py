"""Jobs on a real cluster: `raylite job ...` as a user runs it, and JobSubmissionClient in-process.

One head (`raylite start --head` on loopback, in a temp dir this module made) serves every
test here and is stopped when the module ends. Each test polls with the in-process client
(quick) and uses the command where the command is what is tested.
"""
import asyncio
import json
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import raylite
from raylite.job_submission import JobDetails, JobErrorType, JobStatus, JobSubmissionClient
from wheels import make_wheel

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """(temp dir, address) of a head that lives for this module."""
    temp = tmp_path_factory.mktemp("jobs") / "t"
    out = subprocess.run([sys.executable, "-m", "raylite", "start", "--head", "--port", "0",
                          "--num-cpus", "2", "--temp-dir", str(temp)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    address = out.stdout.split(" started at ")[1].split()[0]
    yield temp, address
    subprocess.run([sys.executable, "-m", "raylite", "stop", "--temp-dir", str(temp)],
                   capture_output=True, timeout=60)
    subprocess.run([sys.executable, "-m", "raylite", "stop", "--force", "--temp-dir", str(temp)],
                   capture_output=True, timeout=60)


@pytest.fixture
def client(head, monkeypatch):
    """A client in this process (connected only while each call runs)."""
    monkeypatch.setenv("RAYLITE_TEMP_DIR", str(head[0]))
    return JobSubmissionClient(head[1])


def job(head, *args, check=True, timeout=60):
    """`raylite job ARGS...` (options before a `--` in ARGS go before it)."""
    args = list(args)
    at = args.index("--") if "--" in args else len(args)
    cmd = [sys.executable, "-m", "raylite", "job", *args[:at], "--temp-dir", str(head[0]),
           "--address", head[1], *args[at:]]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def wait_for(client, sid, statuses=TERMINAL, timeout=30.0):
    deadline = time.monotonic() + timeout
    while (status := client.get_job_status(sid)) not in statuses:
        assert time.monotonic() < deadline, f"job {sid} is still {status}"
        time.sleep(0.05)
    return status


def wait_for_log(client, sid, text, timeout=30.0):
    deadline = time.monotonic() + timeout
    while text not in (log := client.get_job_logs(sid)):
        assert time.monotonic() < deadline, f"job {sid} never printed {text!r}; log: {log!r}"
        time.sleep(0.05)
    return log


def gone(pid, timeout=5.0):
    """True once pid is no process (a zombie counts as gone: it runs nothing)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def script(tmp_path, name, code):
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return str(path)


TASKS = """
    import raylite

    raylite.init()

    @raylite.remote
    def square(x):
        return x * x

    print("sum of squares:", sum(raylite.get([square.remote(i) for i in range(10)])))
"""

SLEEPER = """
    import os, signal, sys, time
    import raylite

    raylite.init(namespace="jobs-test")

    @raylite.remote
    class Victim:
        def pid(self):
            return os.getpid()

    victim = Victim.options(name=sys.argv[1]).remote()
    if len(sys.argv) > 2:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("pids", os.getpid(), raylite.get(victim.pid.remote()), flush=True)
    time.sleep(120)
"""


def _pids(log):
    words = log.split("pids", 1)[1].split()
    return int(words[0]), int(words[1])


# -- the command -------------------------------------------------------------------------
def test_submit_follows_the_log_of_a_script_using_tasks_until_it_succeeds(head, client, tmp_path):
    path = script(tmp_path, "tasks.py", TASKS)
    out = job(head, "submit", "--submission-id", "tasks-1", "--", "python", path)
    assert "sum of squares: 285" in out.stdout
    assert "'tasks-1' succeeded" in out.stderr
    assert client.get_job_status("tasks-1") == JobStatus.SUCCEEDED
    assert "sum of squares: 285" in client.get_job_logs("tasks-1")
    assert job(head, "logs", "tasks-1").stdout == "sum of squares: 285\n"


def test_a_failing_script_fails_with_its_exit_code_in_the_message(head, client):
    out = job(head, "submit", "--submission-id", "fails-1", "--", "python", "-c",
              "import sys; print('about to fail'); sys.exit(3)", check=False)
    assert out.returncode == 1
    assert "about to fail" in out.stdout
    info = client.get_job_info("fails-1")
    assert info.status == JobStatus.FAILED and info.driver_exit_code == 3
    assert "exit code 3" in info.message and "about to fail" in info.message
    assert info.error_type is JobErrorType.JOB_ENTRYPOINT_COMMAND_ERROR
    assert info.error_type == "JOB_ENTRYPOINT_COMMAND_ERROR"
    assert info.dict()["error_type"] == "JOB_ENTRYPOINT_COMMAND_ERROR"


def test_stop_ends_the_entrypoint_process_and_the_actors_it_made(head, client, tmp_path,
                                                                 monkeypatch):
    path = script(tmp_path, "sleeper.py", SLEEPER)
    out = job(head, "submit", "--no-wait", "--", "python", path, "victim-1")
    sid = out.stdout.strip()
    assert sid.startswith("raysubmit_") and "\n" not in sid  # the id alone on stdout
    driver, actor = _pids(wait_for_log(client, sid, "pids"))
    assert client.get_job_status(sid) == JobStatus.RUNNING
    stop = job(head, "stop", sid)
    assert "STOPPED" in stop.stdout
    info = client.get_job_info(sid)
    assert info.status == JobStatus.STOPPED and info.end_time >= info.start_time
    assert gone(driver) and gone(actor)
    monkeypatch.setenv("RAYLITE_TEMP_DIR", str(head[0]))
    raylite.init(address=head[1])
    try:
        with pytest.raises(ValueError, match="victim-1"):
            raylite.get_actor("victim-1", namespace="jobs-test")
    finally:
        raylite.shutdown()
    assert client.stop_job(sid) is False


def test_stop_kills_a_job_that_ignores_sigterm_after_the_grace_period(head, client, tmp_path):
    path = script(tmp_path, "stubborn.py", SLEEPER)
    sid = client.submit_job(entrypoint=f"python {path} victim-2 ignore-sigterm")
    driver, actor = _pids(wait_for_log(client, sid, "pids"))
    t = time.monotonic()
    assert client.stop_job(sid) is True
    assert wait_for(client, sid) == JobStatus.STOPPED
    assert 2.5 < time.monotonic() - t < 15  # SIGTERM ignored, SIGKILL after the 3 s grace
    assert gone(driver) and gone(actor)


def test_processes_a_job_leaves_behind_end_with_it(head, client):
    sid = client.submit_job(entrypoint="sleep 60 & echo $!")
    assert wait_for(client, sid) == JobStatus.SUCCEEDED  # once its leftovers are gone too
    assert gone(int(client.get_job_logs(sid)), timeout=0)


def test_no_wait_then_status_and_follow(head, client):
    out = job(head, "submit", "--no-wait", "--submission-id", "nowait-1", "--", "python", "-c",
              "import time; print('first', flush=True); time.sleep(1); print('second')")
    assert out.stdout.strip() == "nowait-1" and "raylite job logs --follow" in out.stderr
    status = job(head, "status", "nowait-1").stdout
    assert any(f"'nowait-1': {s}" in status for s in ("PENDING", "RUNNING", "SUCCEEDED"))
    follow = job(head, "logs", "--follow", "nowait-1")  # returns once the job has ended
    assert follow.stdout == "first\nsecond\n"
    assert client.get_job_status("nowait-1") == JobStatus.SUCCEEDED
    assert "finished successfully" in job(head, "status", "nowait-1").stdout


def test_working_dir_and_env_vars_reach_the_entrypoint(head, client, tmp_path):
    wd = tmp_path / "project"
    (wd / "pkg").mkdir(parents=True)
    (wd / "pkg" / "__init__.py").write_text("")
    (wd / "pkg" / "helper.py").write_text("GREETING = 'hello from the working dir'\n")
    (wd / "big.bin").write_bytes(b"x" * 1000)
    (wd / "main.py").write_text(textwrap.dedent("""
        import os
        from pkg.helper import GREETING
        print(GREETING, os.environ["JOB_COLOR"], os.path.exists("big.bin"), os.getcwd())
    """))
    out = job(head, "submit", "--working-dir", str(wd), "--runtime-env-json",
              '{"env_vars": {"JOB_COLOR": "blue"}, "excludes": ["*.bin"]}', "--",
              "python", "main.py")
    line = out.stdout.strip()
    assert line.startswith("hello from the working dir blue False ")
    cwd = line.split()[-1]
    assert cwd != str(wd) and cwd.startswith(str(head[0]))  # a copy, unpacked on the head


def test_list_shows_each_job_with_its_status(head, client):
    a = client.submit_job(entrypoint="echo listed-a", submission_id="list-a")
    b = client.submit_job(entrypoint="exit 4", submission_id="list-b")
    wait_for(client, a), wait_for(client, b)
    out = job(head, "list").stdout
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "SUCCEEDED" in lines["list-a"] and "echo listed-a" in lines["list-a"]
    assert "FAILED" in lines["list-b"]
    assert "was not running: SUCCEEDED" in job(head, "stop", "list-a").stdout
    ids = [j.submission_id for j in client.list_jobs()]
    assert ids.index("list-a") < ids.index("list-b")


def test_bad_requests_say_what_is_wrong(head):
    unknown = job(head, "status", "no-such-job", check=False)
    assert unknown.returncode == 1 and "no-such-job" in unknown.stderr and "does not exist" in \
        unknown.stderr
    empty = job(head, "submit", "--", check=False)
    assert empty.returncode == 2 and "after --" in empty.stderr
    bad_json = job(head, "submit", "--runtime-env-json", "{nope", "--", "true", check=False)
    assert bad_json.returncode == 2 and "--runtime-env-json" in bad_json.stderr
    conda = job(head, "submit", "--runtime-env-json", '{"conda": "env"}', "--", "true",
                check=False)
    assert conda.returncode == 1 and "'conda'" in conda.stderr


# -- JobSubmissionClient in this process ---------------------------------------------------
def test_client_submits_follows_and_deletes_a_job(head, client, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "mod.py").write_text("VALUE = 41\n")
    (wd / "run.py").write_text(textwrap.dedent("""
        import sys, time, mod
        import raylite
        raylite.init()
        print("start", flush=True)
        time.sleep(0.5)
        print("value", raylite.get(raylite.remote(lambda x: x + 1).remote(mod.VALUE)))
    """))
    sid = client.submit_job(entrypoint="python run.py", runtime_env={"working_dir": str(wd)},
                            metadata={"owner": "tests"}, submission_id="client-1")
    assert sid == "client-1"
    assert not raylite.is_initialized()  # no connection left behind between calls

    async def tail():
        return [chunk async for chunk in client.tail_job_logs(sid)]

    chunks = asyncio.run(tail())  # ends when the job has ended
    assert "".join(chunks) == "start\nvalue 42\n" == client.get_job_logs(sid)
    info = client.get_job_info(sid)
    assert isinstance(info, JobDetails) and info.status == JobStatus.SUCCEEDED
    assert info.submission_id == sid and info.entrypoint == "python run.py"
    assert info.metadata == {"owner": "tests"} and info.driver_exit_code == 0
    assert info.start_time <= info.end_time and int(info.driver_info.pid) > 0
    assert info.runtime_env["working_dir"] == str(wd)
    assert sid in [j.submission_id for j in client.list_jobs()]
    with pytest.raises(ValueError, match="already exists"):
        client.submit_job(entrypoint="true", submission_id=sid)
    assert client.stop_job(sid) is False
    assert client.delete_job(sid) is True
    with pytest.raises(RuntimeError, match="does not exist"):
        client.get_job_status(sid)
    assert not raylite.is_initialized()


def test_client_uses_the_connection_of_a_program_that_called_init(head, client):
    raylite.init(address=head[1])
    try:
        sid = client.submit_job(entrypoint="echo from-a-driver")
        assert wait_for(client, sid) == JobStatus.SUCCEEDED
        assert client.get_job_logs(sid) == "from-a-driver\n"
        assert raylite.is_initialized()  # the program's connection is left as it was
        deadline = time.monotonic() + 10  # and the job's supervisor has ended with the job
        while True:
            try:
                raylite.get_actor(f"_raylite_job_supervisor_{sid}", namespace="_raylite_jobs")
            except ValueError:
                break
            assert time.monotonic() < deadline, "the supervisor outlived its job"
            time.sleep(0.05)
    finally:
        raylite.shutdown()


def test_stopping_a_job_waiting_for_resources_stops_it_at_once(head, client):
    sid = client.submit_job(entrypoint="echo never", entrypoint_num_cpus=64)
    assert client.get_job_status(sid) == JobStatus.PENDING
    assert client.stop_job(sid) is True
    assert client.get_job_status(sid) == JobStatus.STOPPED
    assert client.get_job_logs(sid) == ""


def test_a_job_ends_when_its_supervisor_dies(head, client, tmp_path, monkeypatch):
    path = script(tmp_path, "orphan.py", SLEEPER)
    sid = client.submit_job(entrypoint=f"python {path} victim-3")
    driver, _ = _pids(wait_for_log(client, sid, "pids"))
    monkeypatch.setenv("RAYLITE_TEMP_DIR", str(head[0]))
    raylite.init(address=head[1])
    try:
        raylite.kill(raylite.get_actor(f"_raylite_job_supervisor_{sid}", namespace="_raylite_jobs"))
        info = None
        deadline = time.monotonic() + 30
        while (info := client.get_job_info(sid)).status not in TERMINAL:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        raylite.shutdown()
    assert info.status == JobStatus.FAILED and info.error_type == "JOB_SUPERVISOR_ACTOR_DIED"
    assert gone(driver, timeout=10)  # its runner saw the supervisor go and ended the job


def test_client_refuses_what_it_cannot_reach():
    with pytest.raises(ValueError, match="HTTP"):
        JobSubmissionClient("http://127.0.0.1:8265")
    raylite.init(local_mode=True)
    try:
        with pytest.raises(RuntimeError, match="local mode"):
            JobSubmissionClient("auto")
    finally:
        raylite.shutdown()


def test_a_jobs_tasks_and_actors_run_in_its_working_dir(head, client, tmp_path):
    """`raylite job submit --working-dir`: the entrypoint's tasks and actors get it too."""
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "data.txt").write_text("from the working_dir\n")
    (wd / "skipped.log").write_text("left out\n")
    (wd / "run.py").write_text(textwrap.dedent("""
        import os
        import raylite
        raylite.init()

        @raylite.remote
        def task():  # defined in __main__: its cwd, not the driver's path, finds data.txt
            return open("data.txt").read().strip(), os.path.exists("skipped.log"), os.getcwd()

        @raylite.remote
        class Actor:
            def read(self):
                return open("data.txt").read().strip()

        text, skipped, cwd = raylite.get(task.remote())
        print(text, "|", skipped, "|", os.sep + "runtime_resources" + os.sep in cwd)
        print(raylite.get(Actor.remote().read.remote()))
    """))
    out = job(head, "submit", "--submission-id", "wd-tasks", "--working-dir", str(wd),
              "--runtime-env-json", '{"excludes": ["*.log"]}', "--", "python", "run.py")
    assert client.get_job_status("wd-tasks") == JobStatus.SUCCEEDED, out.stderr
    assert client.get_job_logs("wd-tasks").splitlines() == [
        "from the working_dir | False | True", "from the working_dir"]


def test_py_modules_reach_the_entrypoint_and_its_tasks(head, client, tmp_path):
    """`--runtime-env-json '{"py_modules": [...]}'`: package directories and wheels."""
    pkg = tmp_path / "mods" / "job_pkg_mod"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 'from a package directory'\n")
    wheel = make_wheel(str(tmp_path), "job_wheel_mod", "from a wheel")
    script = tmp_path / "wd" / "use.py"
    script.parent.mkdir()
    script.write_text(textwrap.dedent("""
        import raylite
        import job_pkg_mod, job_wheel_mod
        print("entrypoint:", job_pkg_mod.VALUE, "|", job_wheel_mod.VALUE)
        raylite.init()

        @raylite.remote
        def task():
            import job_pkg_mod, job_wheel_mod
            return job_pkg_mod.VALUE, job_wheel_mod.VALUE

        print("task:", " | ".join(raylite.get(task.remote())))
    """))
    env = json.dumps({"py_modules": [str(pkg), wheel]})
    out = job(head, "submit", "--submission-id", "mods-1", "--working-dir", str(script.parent),
              "--runtime-env-json", env, "--", "python", "use.py")
    assert client.get_job_status("mods-1") == JobStatus.SUCCEEDED, out.stdout + out.stderr
    assert client.get_job_logs("mods-1").splitlines() == [
        "entrypoint: from a package directory | from a wheel",
        "task: from a package directory | from a wheel"]
    assert client.get_job_info("mods-1").runtime_env["py_modules"] == [str(pkg), wheel]
    with pytest.raises(ValueError, match="neither a directory nor a .whl"):
        client.submit_job(entrypoint="true", runtime_env={"py_modules": [str(tmp_path / "no")]})

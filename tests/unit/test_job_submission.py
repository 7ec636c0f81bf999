"""Jobs' pieces without a cluster: the models, runtime_env checks, working_dir packing, the
entrypoint's environment, submission ids and addresses."""
import io
import os
import stat
import zipfile

import pytest

from raylite._runtime_env.packing import pack, unpack
from raylite.job_submission import DriverInfo, JobDetails, JobInfo, JobStatus, JobType
from raylite.job_submission.client import resolve_address
from raylite.job_submission.manager import check_submission_id, new_submission_id
from raylite.job_submission.models import new_record
from raylite.job_submission.package import check_runtime_env
from raylite.job_submission.supervisor import entrypoint_env


def test_job_status_is_a_string_enum_with_terminal_states():
    assert JobStatus.RUNNING == "RUNNING" and str(JobStatus.FAILED) == "FAILED"
    assert [s.value for s in JobStatus if s.is_terminal()] == ["STOPPED", "SUCCEEDED", "FAILED"]
    assert not JobStatus("PENDING").is_terminal()


def test_a_record_becomes_job_details_and_job_info():
    record = new_record("sid-1", "python x.py", {"env_vars": {"A": "1"}}, {"k": "v"},
                        {"num_cpus": 2}, now_ms=1000)
    assert record["status"] == "PENDING" and record["start_time"] == 1000
    record.update(status="SUCCEEDED", end_time=2000, driver_exit_code=0,
                  driver_info={"id": None, "node_ip_address": "127.0.0.1", "pid": "42"})
    details = JobDetails.from_record(record)
    assert details.type is JobType.SUBMISSION and details.status is JobStatus.SUCCEEDED
    assert details.driver_info == DriverInfo(None, "127.0.0.1", "42")
    assert details.entrypoint_num_cpus == 2 and details.metadata == {"k": "v"}
    assert details.dict()["status"] == "SUCCEEDED"
    info = JobInfo.from_json(record)
    assert info.status is JobStatus.SUCCEEDED and info.end_time == 2000
    assert JobInfo.from_json(info.to_json()) == info


def test_runtime_env_for_a_job_is_checked(tmp_path):
    assert check_runtime_env(None) is None
    assert check_runtime_env({"working_dir": tmp_path})["working_dir"] == str(tmp_path)
    assert check_runtime_env({"pip": ["x"]})["pip"] == ["x"]
    assert check_runtime_env({"py_modules": [str(tmp_path)]})["py_modules"] == [str(tmp_path)]
    for bad, words in (({"py_modules": ["x"]}, "neither a directory nor a .whl"),
                       ({"conda": "env"}, "'conda'"),
                       ({"worker_process_setup_hook": print}, "module.function"),
                       ({"env_vars": {"A": 1}}, "str -> str"), ({"excludes": "*.bin"}, "list"),
                       ({"working_dir": "s3://bucket/x.zip"}, "URI"),
                       ({"working_dir": str(tmp_path / "missing")}, "not a directory"),
                       ([], "must be a dict")):
        with pytest.raises(ValueError, match=words):
            check_runtime_env(bad)


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def test_pack_and_unpack_keep_files_and_leave_out_excludes(tmp_path):
    src = tmp_path / "src"
    (src / "pkg" / "data").mkdir(parents=True)
    (src / "build").mkdir()
    (src / "main.py").write_text("print(1)\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "run.sh", 0o755)
    (src / "pkg" / "mod.py").write_text("X = 1\n")
    (src / "pkg" / "data" / "big.bin").write_bytes(b"\0" * 10)
    (src / "build" / "out.o").write_bytes(b"o")
    (src / "notes.log").write_text("log")
    os.symlink(src / "main.py", src / "link.py")
    data = pack(str(src), ["*.bin", "/build", "notes.log"]).data
    dst = tmp_path / "dst"
    unpack(data, str(dst))
    assert _tree(dst) == ["link.py", "main.py", "pkg/mod.py", "run.sh"]
    assert (dst / "link.py").read_text() == "print(1)\n" and not os.path.islink(dst / "link.py")
    assert os.stat(dst / "run.sh").st_mode & 0o100
    assert os.stat(dst).st_mode & 0o077 == 0


def test_pack_refuses_a_working_dir_over_the_limit(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 600)
    (tmp_path / "b").write_bytes(b"x" * 600)
    with pytest.raises(ValueError, match="excludes"):
        pack(str(tmp_path), max_bytes=1000)
    assert pack(str(tmp_path), ["b"], max_bytes=1000).data


@pytest.mark.parametrize("name,mode", [("../evil.py", stat.S_IFREG | 0o600),
                                       ("/abs.py", stat.S_IFREG | 0o600),
                                       ("link", stat.S_IFLNK | 0o777)])
def test_unpack_refuses_what_could_land_outside(tmp_path, name, mode):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        z.writestr(info, "/etc/passwd" if stat.S_ISLNK(mode) else "")
    with pytest.raises(ValueError, match="refusing"):
        unpack(buf.getvalue(), str(tmp_path / "dst"))
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "dst" / "link").exists()


def test_the_entrypoint_environment():
    base = {"PATH": "/usr/bin", "PYTHONPATH": "/lib", "RAYLITE_WORKER": "1", "KEEP": "x"}
    env = entrypoint_env(base, "127.0.0.1:6380", "/tmp/t", "/jobs/wd", {"KEEP": "y", "Z": "1"})
    assert env["RAYLITE_ADDRESS"] == env["RAY_ADDRESS"] == "127.0.0.1:6380"
    assert env["RAYLITE_TEMP_DIR"] == "/tmp/t" and "RAYLITE_WORKER" not in env
    assert env["PYTHONPATH"] == "/jobs/wd" + os.pathsep + "/lib"
    assert env["PATH"].split(os.pathsep)[1] == "/usr/bin" and env["PYTHONUNBUFFERED"] == "1"
    assert env["KEEP"] == "y" and env["Z"] == "1"  # env_vars come last


def test_submission_ids():
    sid = new_submission_id()
    assert sid.startswith("raysubmit_") and check_submission_id(sid) is None
    assert new_submission_id() != sid
    for bad in ("", "a/b", "..", "x" * 129, 7, "sp ace"):
        assert "submission_id" in check_submission_id(bad)


def test_addresses(monkeypatch):
    for name in ("RAYLITE_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_address(None) == "auto"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:1")
    assert resolve_address(None) == "10.0.0.1:1"
    monkeypatch.setenv("RAYLITE_ADDRESS", "127.0.0.1:2")
    assert resolve_address(None) == "127.0.0.1:2" and resolve_address("h:3") == "h:3"
    with pytest.raises(ValueError, match="host:port"):
        resolve_address("http://127.0.0.1:8265")

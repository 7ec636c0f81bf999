"""The deployment recipes say only what the CLI accepts: every `raylite start` in
docs/deploy.md, the systemd units and the Dockerfile, and the Kubernetes manifest's
`args:`, parsed by the real `raylite` parser and checked as `raylite start` checks its flags
(no cluster is started). The manifest's parts must also fit together: the workers join the
Service's name and port, the Service selects the head, every pod proves the same token
from a Secret and gives its pod IP, and each object store fits its /dev/shm."""
from __future__ import annotations

import json
import os
import re
import shlex

import pytest

from raylite.cli import start as start_cmd
from raylite.cli.main import build_parser

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
POD_IPS = {"raylite-head": "10.1.2.3", "raylite-worker": "10.1.2.4"}   # as docs/deploy.md shows


def _read(*path: str) -> str:
    with open(os.path.join(ROOT, *path)) as f:
        return f.read()


def start_args(argv: list[str]):
    """argv after `raylite`, parsed and checked as `raylite start` would; the namespace."""
    assert argv[:1] == ["start"], argv
    args = build_parser().parse_args(argv)     # unknown flags: SystemExit
    if args.port is None:
        args.port = 6380 if args.head else 0
    start_cmd._check_flags(args)              # _Usage when `raylite start` would refuse them
    return args


def _commands(text: str) -> list[list[str]]:
    """Every `raylite start ...` in text's fenced code blocks: its argv after `raylite`
    (continuation lines joined, VAR=value prefixes dropped)."""
    out = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            at = [i for i, w in enumerate(words[:-1]) if os.path.basename(w) == "raylite"
                  and words[i + 1] == "start"]
            if at:
                out.append(words[at[0] + 1:])
    return out


def test_the_docs_start_commands_parse():
    cmds = _commands(_read("docs", "deploy.md"))
    assert len(cmds) >= 9
    roles = [start_args(c) for c in cmds]
    assert any(a.head for a in roles) and any(a.address for a in roles)


def test_a_bad_flag_is_caught():
    with pytest.raises(SystemExit):
        start_args(["start", "--head", "--no-such-flag"])
    with pytest.raises(start_cmd._Usage):
        start_args(["start", "--address", "raylite-head"])   # no port


@pytest.mark.parametrize("unit", ["raylite-head.service", "raylite-node.service"])
def test_the_systemd_units_run_raylite_start_in_the_foreground(unit):
    text = _read("deploy", unit)
    exec_start = re.search(r"^ExecStart=(.*)$", text, re.M).group(1)
    words = shlex.split(exec_start)
    assert os.path.basename(words[0]) == "raylite"
    args = start_args(words[1:])
    assert args.block and "Type=simple" in text     # systemd supervises the foreground process
    assert args.temp_dir == "/var/lib/raylite" and "StateDirectoryMode=0700" in text
    assert (unit == "raylite-head.service") == args.head
    assert "EnvironmentFile=/etc/raylite/token.env" in text
    assert words[1:] in _commands(_read("docs", "deploy.md"))   # the page shows it as it is


def test_the_dockerfile_builds_on_python_slim_and_starts_a_head():
    text = _read("Dockerfile")
    assert re.search(r"^FROM python:3-slim$", text, re.M)
    entry = json.loads(re.search(r"^ENTRYPOINT (.*)$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (.*)$", text, re.M).group(1))
    assert entry[-1] == "raylite"
    args = start_args(cmd)
    assert args.head and args.block and args.host == "0.0.0.0"
    exposed = {int(p) for p in re.search(r"^EXPOSE (.*)$", text, re.M).group(1).split()}
    assert exposed == {args.port, start_cmd.RAY_CLIENT_PORT}


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else int(quantity)


def test_the_kubernetes_manifest_follows_from_the_cli():
    yaml = pytest.importorskip("yaml", reason="pyyaml reads the manifest (Ray's extra brings it)")
    docs = list(yaml.safe_load_all(_read("deploy", "k8s.yaml")))
    service = next(d for d in docs if d["kind"] == "Service")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"raylite-head", "raylite-worker"}
    parsed = {}
    shown = _commands(_read("docs", "deploy.md"))
    for name, d in deployments.items():
        pod = d["spec"]["template"]
        assert d["spec"]["selector"]["matchLabels"] == pod["metadata"]["labels"]
        [c] = pod["spec"]["containers"]
        env = {e["name"]: e.get("valueFrom", {}) for e in c["env"]}
        assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert env["RAYLITE_CLUSTER_TOKEN"] == {"secretKeyRef": {"name": "raylite-token",
                                                                 "key": "token"}}
        argv = [a.replace("$(POD_IP)", POD_IPS[name]) for a in c["args"]]
        assert argv in shown                                  # the page shows it as it is
        args = parsed[name] = start_args(argv)
        assert args.block and args.node_ip_address == POD_IPS[name] and args.host == "0.0.0.0"
        [shm] = [v for v in pod["spec"]["volumes"] if v["name"] in
                 {m["name"] for m in c["volumeMounts"] if m["mountPath"] == "/dev/shm"}]
        assert shm["emptyDir"]["medium"] == "Memory"
        assert args.object_store_memory < _bytes(shm["emptyDir"]["sizeLimit"])
        assert args.num_cpus == float(c["resources"]["limits"]["cpu"])  # not the host's CPUs
    head, worker = parsed["raylite-head"], parsed["raylite-worker"]
    assert head.head and not worker.head
    assert service["spec"]["selector"] == \
        deployments["raylite-head"]["spec"]["template"]["metadata"]["labels"]
    ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert ports == {head.port: head.port, start_cmd.RAY_CLIENT_PORT: start_cmd.RAY_CLIENT_PORT}
    assert worker.address == f"{service['metadata']['name']}:{head.port}"

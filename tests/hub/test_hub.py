"""The course under a real JupyterHub, as a teacher runs it for a class.

A hub on 127.0.0.1 (dummy authenticator, one local process per learner) gives
three learners their own copy of the course (a git clone, as nbgitpuller
makes), starts their servers, and has all three run lesson 03's and lesson
06's solutions at the same time, cell by cell, through their own server's
kernel API. It proves that every check passes, that no two learners ever have
a server on the same port (so no call reaches another learner's server), that
nothing in the shared course folder is written, and that every learner process
is gone afterwards. Figures (wall time, peak memory per learner) are printed
and written to artifacts/hub.txt.

Run with `make test-hub` (it installs configurable-http-proxy from npm first).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket  # websocket-client

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LEARNERS = ["ada", "grace", "linus"]
NOTEBOOKS = ["solutions/03_calculator.ipynb", "solutions/06_streaming.ipynb"]
TOKEN = secrets.token_hex(16)
# Where the learners' processes may write; all else in the course folder must stay as it was.
IGNORED_IN_SNAPSHOT = {".git", ".venv", "node_modules", "artifacts", ".pytest_cache"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under root, except ignored folders."""
    files = {}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in IGNORED_IN_SNAPSHOT]
        for name in names:
            path = Path(folder, name)
            stat = path.stat()
            files[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return files


def processes_under(folder: Path) -> dict[int, int]:
    """{pid: resident memory in bytes} of processes whose working folder is inside `folder`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            rss_pages = int((entry / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if cwd == str(folder) or cwd.startswith(f"{folder}/"):
            found[int(entry.name)] = rss_pages * os.sysconf("SC_PAGE_SIZE")
    return found


def folder_size(folder: Path) -> int:
    """Bytes in all files under `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def write_config(hub_dir: Path, homes: Path, port: int) -> Path:
    config = hub_dir / "jupyterhub_config.py"
    as_root = ["--allow-root"] if os.geteuid() == 0 else []
    config.write_text(f"""
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.JupyterHub.db_url = "sqlite:///{hub_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{hub_dir}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{hub_dir}/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {set(LEARNERS)!r}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{homes}/{{username}}"
c.Spawner.cmd = ["{VENV_BIN}/jupyterhub-singleuser"]
c.Spawner.args = {as_root!r}
c.Spawner.environment = {{
    "PATH": "{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
    # Python's bytecode cache goes to the learner's home, not into the shared helpers/.
    "PYTHONPYCACHEPREFIX": lambda spawner: spawner.home_dir + "/.cache/pycache",
}}
c.Spawner.start_timeout = 120
c.JupyterHub.services = [{{"name": "course-test", "api_token": "{TOKEN}"}}]
c.JupyterHub.load_roles = [{{
    "name": "course-test",
    "scopes": ["admin:users", "admin:servers", "access:servers", "list:users"],
    "services": ["course-test"],
}}]
""")
    return config


class Hub:
    """The hub's REST API, called with the test service's token."""

    def __init__(self, url: str, homes: Path) -> None:
        self.url = url
        self.homes = homes  # each learner's home folder is homes / name
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {TOKEN}"

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.request(method, f"{self.url}/hub/api{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def wait_until_up(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.api("GET", "/")
                return
            except requests.RequestException:
                time.sleep(0.3)
        raise TimeoutError("the hub did not come up")

    def start_server(self, name: str, seconds: float = 120) -> None:
        self.api("POST", f"/users/{name}/server")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            server = self.api("GET", f"/users/{name}").json()["servers"].get("", {})
            if server.get("ready"):
                return
            time.sleep(0.3)
        raise TimeoutError(f"{name}'s server did not start")

    def stop_server(self, name: str, seconds: float = 60) -> None:
        self.api("DELETE", f"/users/{name}/server")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.api("GET", f"/users/{name}").json()["servers"]:
                return
            time.sleep(0.3)
        raise TimeoutError(f"{name}'s server did not stop")


RUNNING_PORTS = (
    "sorted(s.port for s in __import__('helpers.servers').servers.running().values()) "
    "if 'helpers.servers' in __import__('sys').modules else []"
)


def run_notebook(hub: Hub, learner: str, notebook: str) -> dict[str, Any]:
    """Run every code cell of the learner's copy of `notebook` in a kernel of their server."""
    user_url = f"{hub.url}/user/{learner}"
    path = f"grpc-course/{notebook}"
    session = hub.session.post(f"{user_url}/api/sessions", timeout=30, json={
        "path": path, "type": "notebook", "name": Path(path).name, "kernel": {"name": "python3"},
    })
    session.raise_for_status()
    kernel_id = session.json()["kernel"]["id"]
    ws_url = user_url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    connection = websocket.create_connection(ws_url, timeout=120,
                                             header=[f"Authorization: token {TOKEN}"])
    cells = json.loads((hub.homes / learner / path).read_text())["cells"]
    result: dict[str, Any] = {"checks_passed": 0, "checks": 0, "errors": [], "ports": set()}
    try:
        for cell in cells:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            outputs, reply = execute(connection, source)
            text = "\n".join(outputs)
            if reply.get("status") != "ok":
                result["errors"].append(f"{notebook}: {source.splitlines()[0]}: "
                                        f"{reply.get('ename')}: {reply.get('evalue')}")
            if "check" in cell.get("metadata", {}).get("tags", []):
                result["checks"] += 1
                result["checks_passed"] += "✅" in text
            ports = reply.get("user_expressions", {}).get("ports", {})
            if ports.get("status") == "ok":
                result["ports"].update(json.loads(ports["data"]["text/plain"]))
    finally:
        connection.close()
        hub.session.delete(f"{user_url}/api/sessions/{session.json()['id']}", timeout=30)
    return result


def execute(connection: websocket.WebSocket, code: str) -> tuple[list[str], dict[str, Any]]:
    """Send one execute_request; return the text of its outputs and its execute_reply."""
    msg_id = uuid.uuid4().hex
    connection.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {"ports": RUNNING_PORTS}, "allow_stdin": False,
                    "stop_on_error": False},
    }))
    outputs: list[str] = []
    reply: dict[str, Any] | None = None
    idle = False
    while reply is None or not idle:
        message = json.loads(connection.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            outputs.append(content["text"])
        elif kind in ("display_data", "execute_result"):
            outputs.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            outputs.append(f"{content['ename']}: {content['evalue']}")
        elif kind == "execute_reply":
            reply = content
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    return outputs, reply


@pytest.fixture
def hub(tmp_path: Path):
    if not shutil.which("configurable-http-proxy"):
        pytest.fail("configurable-http-proxy is not on PATH: run this test with `make test-hub`")
    hub_dir, homes = tmp_path / "hub", tmp_path / "home"
    hub_dir.mkdir()
    for learner in LEARNERS:  # each learner's own copy, as nbgitpuller would make it
        subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT),
                        str(homes / learner / "grpc-course")], check=True)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("JUPYTER")}
    log = (hub_dir / "hub.log").open("w")
    process = subprocess.Popen([str(VENV_BIN / "jupyterhub"), "-f",
                                str(write_config(hub_dir, homes, port))],
                               cwd=hub_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    hub = Hub(f"http://127.0.0.1:{port}", homes)
    try:
        hub.wait_until_up()
        yield hub
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_three_learners_run_lessons_at_once_each_on_their_own_server(hub: Hub) -> None:
    before = snapshot(PROJECT_ROOT)
    started = time.monotonic()
    for learner in LEARNERS:
        hub.start_server(learner)

    peak = {learner: 0 for learner in LEARNERS}
    done = threading.Event()

    def sample_memory() -> None:
        while not done.is_set():
            for learner in LEARNERS:
                rss = sum(processes_under(hub.homes / learner).values())
                peak[learner] = max(peak[learner], rss)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    jobs = [(learner, notebook) for learner in LEARNERS for notebook in NOTEBOOKS]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = dict(zip(jobs, pool.map(lambda job: run_notebook(hub, *job), jobs)))
    ran = time.monotonic() - started
    done.set()
    sampler.join()

    for learner in LEARNERS:
        hub.stop_server(learner)
    time.sleep(1)
    left_behind = {learner: processes_under(hub.homes / learner) for learner in LEARNERS}
    wall = time.monotonic() - started

    report = [f"{len(LEARNERS)} learners x {len(NOTEBOOKS)} notebooks at once: "
              f"{ran:.1f} s to start the servers and run them, {wall:.1f} s with stopping"]
    for learner in LEARNERS:
        report.append(f"{learner}: peak memory {peak[learner] / 2**20:.0f} MiB (server and kernels), "
                      f"disk {folder_size(hub.homes / learner) / 2**20:.1f} MiB")
    artifacts = PROJECT_ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "hub.txt").write_text("\n".join(report) + "\n")
    print("\n" + "\n".join(report))

    for (learner, notebook), result in results.items():
        assert not result["errors"], f"{learner}, {notebook}: {result['errors']}"
        assert result["checks"] > 0
        assert result["checks_passed"] == result["checks"], f"{learner}, {notebook}: a ❌"
    ports = {learner: set().union(*(results[(learner, nb)]["ports"] for nb in NOTEBOOKS))
             for learner in LEARNERS}
    assert all(ports.values()), "every learner started servers"
    for a in LEARNERS:
        for b in LEARNERS:
            assert a == b or not ports[a] & ports[b], f"{a} and {b} shared a port"
    for learner in LEARNERS:
        copy = hub.homes / learner
        assert (copy / "grpc-course" / ".proto_cache").is_dir(), "proto cache in the learner's copy"
        assert list((copy / ".local/share/jupyter/runtime").glob("*")) or \
            (copy / ".local/share/jupyter").is_dir(), "Jupyter folders in the learner's home"
    after = snapshot(PROJECT_ROOT)
    written = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    assert not written, f"learners wrote into the shared course folder: {written[:5]}"
    assert left_behind == {learner: {} for learner in LEARNERS}, left_behind

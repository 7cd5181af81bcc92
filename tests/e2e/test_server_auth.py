"""The shared tracking server has logins (issue 32): `make server` (scripts/pg_server.sh) runs MLflow's
basic-auth app in front of its PostgreSQL store, with an admin password drawn at its first start.

A request without a login is refused, and so is `runner` pointed at it without one (one line, exit before
any run); the admin creates a user as README says (mlflow.server.get_app_client), and a runner with that
user's login in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD logs its run.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, TINY, run_runner

# One server for the module, on one pytest-xdist worker (make test runs --dist loadgroup).
pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.xdist_group("server")]

MLFLOW = Path(sys.executable).parent / "mlflow"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(url: str, login: tuple[str, str] | None = None) -> int:
    """The HTTP status of one GET, with a basic-auth login or without one."""
    request = urllib.request.Request(url)
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(login).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):  # not listening (yet)
        return 0


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if status_of(url + "/health") == 200:
            return
        time.sleep(0.5)
    pytest.fail(f"the server did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Path]]:
    """(the server's url, its state directory), started by scripts/pg_server.sh and stopped by its pid."""
    if not sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("PostgreSQL missing: `make test-deps` installs postgresql")
    state = Path(tempfile.mkdtemp(prefix="runner-auth-"))  # as root the cluster belongs to `postgres`: 755
    state.chmod(0o755)
    port, log = free_port(), state / "server.log"
    env = {**os.environ, "STATE": str(state), "PORT": str(port), "PGPORT": str(free_port()), "WORKERS": "1"}
    env.update(MLFLOW=str(MLFLOW), MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with log.open("w") as out:  # its own session: the script, mlflow and uvicorn stop as one group
        proc = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "pg_server.sh")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        yield f"http://127.0.0.1:{port}", state
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the script's EXIT trap stops postgres
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(state, ignore_errors=True)


def admin_login(state: Path) -> tuple[str, str]:
    password = state / "mlflow-admin-password"
    assert oct(password.stat().st_mode & 0o777) == "0o600"  # drawn at the first start, for its owner only
    return "admin", password.read_text().strip()


def test_a_client_without_a_login_is_refused(server, workdir):
    url, state = server
    code = status_of(url + SEARCH)
    print(f"GET {SEARCH} without a login: HTTP {code}")
    assert code == 401
    assert status_of(url + SEARCH, ("admin", "wrong-password")) == 401
    assert status_of(url + SEARCH, admin_login(state)) == 200
    no_login = {"MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""}
    result = run_runner([*TINY, f"tracking.uri={url}"], cwd=workdir, env=no_login)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"tracking.uri={url} refused no login (HTTP 401)" in result.stderr, result.stderr[-2000:]
    assert not (workdir / "outputs").exists() and not (workdir / "checkpoints").exists()


def test_a_user_created_by_the_admin_logs_a_run(server, workdir, monkeypatch):
    url, state = server
    from mlflow.server import get_app_client

    for key, value in zip(
        ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"), admin_login(state), strict=True
    ):
        monkeypatch.setenv(key, value)
    get_app_client("basic-auth", tracking_uri=url).create_user("alice", "alice-password-1")
    alice = {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "alice-password-1"}
    result = run_runner([*TINY, f"tracking.uri={url}"], cwd=workdir, env=alice)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    for key, value in alice.items():
        monkeypatch.setenv(key, value)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    (run,) = client.search_runs([client.get_experiment_by_name("runner").experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [6]

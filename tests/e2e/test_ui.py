"""Browsing the ablations the way a person does (issue 10).

1. A tiny 2-job sweep logged over http to `scripts/pg_server.sh` (what `make server` runs: PostgreSQL backend,
   artifacts served by the server), read back with MlflowClient.
2. The same sweep into the default sqlite store (trained in the background while 1 runs), `mlflow server`
   over it on a free loopback port, and headless Chromium (Debian's `chromium` + `chromium-driver`, installed
   by `make test-deps`) reading the rendered pages: both runs under the sweep's parent with their names,
   a run's params and a metric.

Servers are started here and stopped by their own process ids (mlflow's process group, postgres' postmaster).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, TINY, images_wrong, run_runner

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
MLFLOW = Path(sys.executable).parent / "mlflow"
SWEEP = ["-m", "act=relu,prelu", *TINY]
WAIT_S = 60  # the MLflow UI is a React app on a shared 2-core machine: generous, but only an upper bound
SCREENSHOT = "mlflow-sweep.png"

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # servers, a browser, `runner` subprocesses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    """Poll <url>/health until the server answers; fail with its log if it exits or never answers."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"server at {url} did not answer:\n{log.read_text()[-3000:]}")


def start_server(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    # Its own session: mlflow runs uvicorn as a child, so the whole group is stopped by our pid.
    # No GenAI job runners (MLflow 3 starts several processes of them by default).
    full_env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    with log.open("w") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def gone(pid: int, timeout: float = 60) -> bool:
    """Wait for a process that is not our child (postgres daemonizes) to exit."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not Path(f"/proc/{pid}").exists()


def client(uri: str):
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def sweep_runs(uri: str) -> tuple[object, list]:
    """(the sweep's parent run, its jobs) in experiment `runner`."""
    c = client(uri)
    exp = c.get_experiment_by_name("runner")
    assert exp is not None, f"no experiment 'runner' at {uri}"
    runs = c.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("runner.sweep") == "parent"]
    jobs = [r for r in runs if r.data.tags.get("runner.sweep") != "parent"]
    assert len(parents) == 1, f"{len(parents)} sweep parent runs at {uri}"
    return parents[0], jobs


# --- 1. a sweep over http, to `make server` (PostgreSQL + served artifacts) -----------------------


@pytest.fixture
def pg_server() -> Iterator[str]:
    pgbin = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not pgbin:
        pytest.skip("PostgreSQL missing: `make test-deps` installs postgresql")
    # Not under pytest's tmp dir (mode 0700): as root, the cluster belongs to the `postgres` user.
    state = Path(tempfile.mkdtemp(prefix="runner-pg-"))
    state.chmod(0o755)
    port = free_port()
    log = state / "server.log"
    env = {
        "STATE": str(state),
        "PORT": str(port),
        "PGPORT": str(free_port()),
        "WORKERS": "1",
        "MLFLOW": str(MLFLOW),
    }
    proc = start_server(["bash", str(ROOT / "scripts" / "pg_server.sh")], log, env)
    postmaster = state / "postgres" / "postmaster.pid"
    pg_pid = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log)
        pg_pid = int(postmaster.read_text().split()[0])
        assert f"runner tracking.uri={url}" in log.read_text()
        # the server has logins (tests/e2e/test_server_auth.py): the runner and MlflowClient log in as admin
        login = {"MLFLOW_TRACKING_USERNAME": "admin"}
        login["MLFLOW_TRACKING_PASSWORD"] = (state / "mlflow-admin-password").read_text().strip()
        with pytest.MonkeyPatch.context() as patch:
            for key, value in login.items():
                patch.setenv(key, value)
            yield url
    finally:
        stop_server(proc)  # the script's EXIT trap stops postgres too; make sure of it by its pid
        if pg_pid is not None and not gone(pg_pid):
            os.kill(pg_pid, signal.SIGINT)  # postgres' "fast" shutdown
            assert gone(pg_pid), f"postgres {pg_pid} still running"
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.cluster  # the shared store of several machines: make test-cluster (make test keeps to 12 min)
def test_sweep_logged_to_the_postgres_tracking_server(pg_server: str, tmp_path: Path) -> None:
    result = run_runner([*SWEEP, f"tracking.uri={pg_server}"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"{pg_server}/#/experiments/" in result.stdout  # the job prints the run's URL

    parent, jobs = sweep_runs(pg_server)
    assert sorted(r.data.params["act"] for r in jobs) == ["prelu", "relu"]
    c = client(pg_server)
    for run in jobs:
        params = run.data.params
        assert (params["model"], params["init"], params["model.width"]) == ("resnet20", "kaiming", "4")
        assert run.info.status == "FINISHED" and run.data.tags["runner.status"] == "finished"
        assert images_wrong(run.data.metrics["test_top1_error"], 256) in range(257)
        assert [m.step for m in c.get_metric_history(run.info.run_id, "train_loss")] == [6]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        # artifacts went through the server into its own store, none to the runner's directory
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        assert {"config.yaml", "overrides.txt"} <= {a.path for a in c.list_artifacts(run.info.run_id)}
    assert not (tmp_path / "mlartifacts").exists()


# --- 2. the UI over the default sqlite store, in a real browser ------------------------------------------


@pytest.fixture(scope="module")
def sweep_dir(tiny_sweep: tuple[Path, str]) -> Path:
    """The e2e tier's shared sweep (tests/conftest.py: act=relu,prelu on TINY), trained once a session: the
    UI only reads its store (the server's log goes beside it)."""
    return tiny_sweep[0]


@pytest.fixture
def ui_url(sweep_dir: Path) -> Iterator[str]:
    port = free_port()
    log = sweep_dir / "mlflow-server.log"
    proc = start_server(
        [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{sweep_dir / 'mlflow.db'}",
         "--default-artifact-root", str(sweep_dir / "mlartifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        log,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log)
        yield url
    finally:
        stop_server(proc)
    assert proc.returncode is not None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            f"{CHROMIUM} or {CHROMEDRIVER} missing: `make test-deps` installs chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                "--window-size=1500,900"):  # fmt: skip
        options.add_argument(arg)
    # An explicit driver path: selenium-manager (which downloads drivers) is never used.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_sweep_browsed_in_the_mlflow_ui(sweep_dir: Path, ui_url: str, browser, tmp_path: Path) -> None:
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        ElementNotInteractableException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    parent, jobs = sweep_runs(f"sqlite:///{sweep_dir / 'mlflow.db'}")
    names = sorted(r.info.run_name for r in jobs)
    assert [n.split("-")[2] for n in names] == ["prelu", "relu"], names  # model-init-act-...
    experiment_id = jobs[0].info.experiment_id
    # React re-renders replace elements under our feet: looked up again, never a failure by themselves.
    flaky = (
        StaleElementReferenceException,
        ElementClickInterceptedException,
        ElementNotInteractableException,
    )
    wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=flaky)

    def click(xpath: str) -> None:
        wait.until(lambda driver: driver.find_element(By.XPATH, xpath).click() or True)

    # The runs table (MLflow 3 opens the GenAI view unless told "model training").
    browser.get(f"{ui_url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
    if parent is not None:  # a sweep's jobs are nested under its parent, collapsed: expand it
        parent_row = f"//*[@role='row'][.//a[normalize-space(.)='{parent.info.run_name}']]"
        click(parent_row + "//button")

    def run_links(driver) -> dict[str, str] | bool:
        """Run name → the run id its link points to, once every job's link is shown."""
        found = {}
        for name in names:
            shown = [
                a
                for a in driver.find_elements(By.XPATH, f"//a[normalize-space(.)='{name}']")
                if a.is_displayed()
            ]
            if not shown:
                return False
            found[name] = shown[0].get_attribute("href").split("/runs/")[-1]
        return found

    assert wait.until(run_links) == {r.info.run_name: r.info.run_id for r in jobs}
    for close in browser.find_elements(
        By.CSS_SELECTOR, "button[data-component-id$='assistant.chat_panel.close']"
    ):
        close.click()  # the assistant panel hides half the table in a screenshot
    assert browser.save_screenshot(str(tmp_path / "mlflow-sweep-table.png"))

    # The chart view: every metric plotted against the iteration, one line per run.
    radio = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=radio][value=CHART]")))
    browser.execute_script("arguments[0].click()", radio)  # the input itself is hidden behind its label
    search = wait.until(
        ec.visibility_of_element_located((By.XPATH, "//input[@placeholder='Search metric charts']"))
    )
    search.send_keys("test_top1_error")  # charts render lazily, as they scroll in: bring this one up
    title = "//h4[normalize-space(.)='test_top1_error']"
    wait.until(ec.visibility_of_element_located((By.XPATH, title)))
    wanted = {f"{name} (test_top1_error)" for name in names}  # the chart's legend: one line per run

    def legend(driver) -> set[str] | bool:
        spans = driver.find_elements(By.XPATH, "//span[contains(., '(test_top1_error)')]")
        texts = {e.get_attribute("textContent") for e in spans}
        return texts if wanted <= texts else False

    wait.until(legend)
    shot = tmp_path / SCREENSHOT
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    # A run's page: its group choices as params, and its metrics.
    relu = next(n for n in names if n.split("-")[2] == "relu")
    click(f"//a[normalize-space(.)='{relu}']")

    def cell(key: str) -> str:
        """The value beside `key` in the run page's params/metrics tables."""
        row = f"//*[@role='row'][*[@role='cell'][1][normalize-space(.)='{key}']]/*[@role='cell'][2]"
        return wait.until(lambda driver: driver.find_element(By.XPATH, row).text.strip() or False)

    assert (cell("model"), cell("init"), cell("act")) == ("resnet20", "kaiming", "relu")
    run = next(r for r in jobs if r.info.run_name == relu)
    shown = float(cell("test_top1_error"))
    assert 0.0 <= shown <= 100.0
    assert shown == pytest.approx(run.data.metrics["test_top1_error"], abs=1e-3)
    browser.save_screenshot(str(tmp_path / "mlflow-run.png"))

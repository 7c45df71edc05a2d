"""Job 2 as a person does it: the MLflow UI (started by `dlbench ui`) lists the arm runs and the comparison run.

Needs Debian's Chromium and ChromeDriver (`apt-get install chromium chromium-driver`; `.ci/run` installs them)
and selenium (the `test` extra). Skipped, saying so, when they are absent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, SPECS, dlbench

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - depends on the machine
    webdriver = None

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    webdriver is None or not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs selenium (pip install -e '.[test]') and Debian's chromium and chromium-driver "
           "(apt-get install chromium chromium-driver)",
)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A finished quick experiment and `dlbench ui` serving its store on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("ui")
    storage, uri = str(tmp / "studies"), f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}"
    dlbench("run", str(SPECS / "tiny.toml"), "--quick", "--trials", "1", "--epochs", "1", "--storage", storage,
            "--tracking-uri", uri)
    port = _free_port()
    log = open(tmp / "ui.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "dlbench", "ui", "--port", str(port), "--tracking-uri", uri],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"MLflow UI did not start:\n{(tmp / 'ui.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, uri
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def page(ui, tmp_path_factory):
    """The experiment's page in headless Chromium, once the run table has rendered; its text and a screenshot."""
    from mlflow.tracking import MlflowClient

    url, uri = ui
    exp_id = MlflowClient(tracking_uri=uri).get_experiment_by_name("tiny-quick").experiment_id
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1600,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(f"{url}/#/experiments/{exp_id}/runs?workflowType=machine_learning")  # the link `dlbench ui` prints
        WebDriverWait(driver, 90).until(lambda d: "comparison" in d.find_element(By.TAG_NAME, "body").text)
        time.sleep(1)  # let the table finish laying out for the screenshot
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "mlflow-ui.png"
        driver.save_screenshot(str(shot))
        yield driver.find_element(By.TAG_NAME, "body").text, shot
    finally:
        driver.quit()


def test_ui_lists_the_arm_runs_and_the_comparison_run(page):
    text, shot = page
    lines = {line.strip() for line in text.splitlines()}
    # Arm runs are the top-level runs (trials and repeats are nested under them), and the comparison run.
    assert {"tanh", "relu", "comparison"} <= lines, text[:2000]
    assert "tiny-quick" in text
    assert "Model training" in text and "Runs" in lines
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000

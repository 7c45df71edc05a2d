"""`dlbench ui`: MLflow's server in a process group of its own, stopped whole by SIGTERM, without the job executor."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from conftest import ROOT

pytestmark = pytest.mark.e2e  # starts a server


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_sigterm_stops_every_process_of_the_ui_and_no_job_executor_starts(tmp_path):
    port = _port()
    ui = subprocess.Popen([sys.executable, "-m", "dlbench", "ui", "--port", str(port), "--tracking-uri",
                           f"sqlite:///{tmp_path / 'mlflow.db'}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert ui.poll() is None and time.time() < deadline, ui.stderr.read()[-3000:]
                time.sleep(0.3)
        time.sleep(2)  # let the server start whatever it starts
        tree = psutil.Process(ui.pid).children(recursive=True)
        assert tree, "dlbench ui runs MLflow's server as a child"
        commands = [" ".join(p.cmdline()) for p in tree if p.is_running()]
        assert not any("huey" in c or "job" in c.lower() for c in commands), commands
        assert all(p.pid != ui.pid and psutil.Process(p.pid).pid for p in tree)

        ui.send_signal(signal.SIGTERM)  # as a process manager or a test fixture stops it
        ui.wait(60)
        deadline = time.time() + 30
        while _alive([p.pid for p in tree]) and time.time() < deadline:
            time.sleep(0.2)
        assert _alive([p.pid for p in tree]) == [], commands
    finally:
        for pid in _alive([ui.pid] + [p.pid for p in psutil.Process(ui.pid).children(recursive=True)]
                          if ui.poll() is None else []):
            psutil.Process(pid).kill()


def test_the_dashboard_serves_the_studies_of_a_storage(tmp_path):
    pytest.importorskip("optuna_dashboard")  # the test extra installs it
    import optuna

    from dlbench.storage import open_storage

    storage = open_storage(str(tmp_path / "studies"))
    study = optuna.create_study(storage=storage, study_name="exp/arm")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "dlbench", "dashboard", "--port", str(port), "--storage",
                             str(tmp_path / "studies")], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2).read().decode()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
                time.sleep(0.3)
        assert "exp/arm" in body
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_dashboard_without_its_extra_says_how_to_install_it(monkeypatch, capsys):
    from dlbench import cli

    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # as if not installed
    assert cli.main(["dashboard"]) == 2
    assert "pip install -e '.[dashboard]'" in capsys.readouterr().err

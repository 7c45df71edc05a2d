"""Scale-out with real servers: a PostgreSQL database for Optuna and an MLflow tracking server, shared by workers
that each see only the database (they get separate temp folders, as separate machines would).

Without PostgreSQL's binaries the tests are skipped locally, and fail in CI (CI set), where `.ci/run` installs them.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from conftest import ROOT, SPECS, dlbench

TINY = str(SPECS / "tiny.toml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _wait(ok, what: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if ok():
            return
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{what} did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 (initdb in a temp folder); yields its SQLAlchemy URL."""
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    if not (initdb and postgres):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL's initdb/postgres are not installed; .ci/run installs them (apt: postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); CI installs it")
    # PostgreSQL refuses to run as root: run it as the `postgres` user that Debian's package creates.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="dlbench-pg-"))
    if as_user:
        shutil.chown(folder, "postgres", "postgres")
    data, log, port = folder / "data", folder / "server.log", _free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "dlbench", "--no-sync"], check=True,
                   capture_output=True)
    with open(log, "w") as out:
        if as_user:
            shutil.chown(log, "postgres", "postgres")
        proc = subprocess.Popen([*as_user, postgres, "-D", str(data), "-p", str(port), "-k", str(folder),
                                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"], stdout=out, stderr=out)
    url = f"postgresql+psycopg2://dlbench@127.0.0.1:{port}/postgres"

    def accepting() -> bool:
        import psycopg2

        try:
            psycopg2.connect(host="127.0.0.1", port=port, user="dlbench", dbname="postgres").close()
            return True
        except psycopg2.OperationalError:
            return False

    _wait(accepting, "PostgreSQL", proc, log)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 (SQLite backend, proxied artifacts); yields its http URL."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port, log = _free_port(), folder / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                                 f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts"),
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                stdout=out, stderr=out, cwd=folder)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    _wait(healthy, "mlflow server", proc, log, timeout=120)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_advisory_lock_excludes_other_processes(postgres_url, tmp_path):
    # Two processes that share nothing but the database: the second gets the lock only after the first let go.
    script = (
        "import sys, time\n"
        "from dlbench.study import claim_lock\n"
        "lock = claim_lock(sys.argv[1])\n"
        "with lock:\n"
        "    print('acquired', time.time(), flush=True)\n"
        "    with lock:\n"  # reentrant
        "        time.sleep(float(sys.argv[2]))\n"
        "    print('releasing', time.time(), flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen([sys.executable, "-c", script, postgres_url, "3"], stdout=subprocess.PIPE, text=True,
                             env={**env, "TMPDIR": str(tmp_path)})
    assert first.stdout.readline().startswith("acquired")
    second = subprocess.run([sys.executable, "-c", script, postgres_url, "0"], capture_output=True, text=True,
                            env={**env, "TMPDIR": "/tmp"}, timeout=60)
    out_first, _ = first.communicate(timeout=60)
    released = float(out_first.split()[-1])
    acquired = float(second.stdout.split()[1])
    assert acquired >= released, (out_first, second.stdout)


def _runs(client: MlflowClient, exp_id: str, role: str, arm: str):
    return client.search_runs([exp_id], f"tags.`dlbench.role` = '{role}' AND tags.`dlbench.arm` = '{arm}'")


def test_two_workers_on_separate_machines_share_the_budget_exactly(postgres_url, mlflow_server, tmp_path):
    """Two `dlbench run` processes started together on the same PostgreSQL storage and tracking server: every arm
    gets its budget of trials and one repeat per seed, no more, and a third run resumes without adding any."""
    args = ["run", TINY, "--trials", "4", "--seeds", "3", "--storage", postgres_url, "--tracking-uri",
            mlflow_server, "--no-progress"]
    procs = []
    for i in range(2):  # separate temp folders: any lock must go through the database
        tmp = tmp_path / f"machine-{i}"
        tmp.mkdir()
        procs.append(subprocess.Popen([sys.executable, "-m", "dlbench", *args], cwd=ROOT, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      env={**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n\n".join(o[-3000:] for o in outs)
    assert not any("View run" in o for o in outs)  # MLflow's line per run is not our output

    storage = optuna.storages.RDBStorage(postgres_url)
    client = MlflowClient(tracking_uri=mlflow_server)
    exp_id = client.get_experiment_by_name("tiny").experiment_id

    def counts():
        out = {}
        for arm in ("tanh", "relu"):
            trials = optuna.load_study(study_name=f"tiny/{arm}", storage=storage).get_trials(deepcopy=False)
            repeats = _runs(client, exp_id, "repeat", arm)
            out[arm] = {
                "trials": sorted(t.state.name for t in trials),
                "trial_runs": sorted(r.info.status for r in _runs(client, exp_id, "trial", arm)),
                "arm_runs": len(_runs(client, exp_id, "arm", arm)),
                "seeds": sorted((int(r.data.tags["dlbench.seed"]), r.info.status) for r in repeats),
                "workers": {t.user_attrs.get("pid") for t in trials},
            }
        return out

    first = counts()
    for arm, c in first.items():
        assert c["trials"] == ["COMPLETE"] * 4, (arm, c)
        assert c["trial_runs"] == ["FINISHED"] * 4, (arm, c)
        assert c["arm_runs"] == 1, (arm, c)
        assert c["seeds"] == [(0, "FINISHED"), (1, "FINISHED"), (2, "FINISHED")], (arm, c)
    # Both workers claimed trials (they ran side by side, not one after the other).
    assert len(first["tanh"]["workers"] | first["relu"]["workers"]) == 2, first

    again = dlbench(*args)
    assert "tanh" in again.stdout and counts() == first
    report = dlbench("compare", "tiny", "--format", "json", "--storage", postgres_url, "--tracking-uri",
                     mlflow_server)
    assert '"n": 3' in report.stdout


def test_a_missing_database_driver_is_a_clear_input_error(monkeypatch, capsys):
    # No server needed: the driver import fails before any connection is made.
    from dlbench import cli

    monkeypatch.setitem(sys.modules, "psycopg2", None)
    rc = cli.main(["run", TINY, "--storage", "postgresql://user@127.0.0.1:1/optuna", "--no-progress",
                   "--tracking-uri", "sqlite:///" + tempfile.mkdtemp() + "/mlflow.db"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--storage" in err and "psycopg2" in err and "dlbench[postgres]" in err

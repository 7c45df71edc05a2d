"""Scale-out with real servers: a PostgreSQL database for Optuna and an MLflow tracking server, shared by workers
that each see only the database (they get separate temp folders, as separate machines would).

The README's several-machines recipe is read from README.md and run as written, with only its host names, ports
and spec replaced (`_readme_recipe`), so the recipe cannot drift from what is tested.

Without PostgreSQL's binaries the tests are skipped locally, and fail in CI (CI set), where `.ci/run` installs them.
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import re
import shlex
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
from dlbench.storage import redact

pytestmark = pytest.mark.e2e  # end to end: trains, spawns workers or starts servers

TINY = str(SPECS / "tiny.toml")
ARMS = ("tanh", "relu")


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


def _sql(port: int, *statements: str) -> None:
    """Run statements as the superuser `dlbench` (CREATE DATABASE needs autocommit)."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, user="dlbench", dbname="postgres", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="module")
def postgres_port():
    """A throwaway PostgreSQL server on 127.0.0.1 (initdb in a temp folder, superuser `dlbench`); yields its port."""
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    if not (initdb and postgres and _pg_bin("createdb")):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL's initdb/postgres/createdb are not installed; .ci/run installs them "
                        "(apt: postgresql)")
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

    def accepting() -> bool:
        import psycopg

        try:
            psycopg.connect(host="127.0.0.1", port=port, user="dlbench", dbname="postgres").close()
            return True
        except psycopg.OperationalError:
            return False

    _wait(accepting, "PostgreSQL", proc, log)
    yield port
    proc.terminate()
    proc.wait(timeout=30)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url(postgres_port):
    """The server's `postgres` database as a plain postgresql:// URL, written as the README writes them."""
    return f"postgresql://dlbench@127.0.0.1:{postgres_port}/postgres"


def _readme_recipe() -> dict[str, list[str]]:
    """The lines of the README's several-machines recipe by program (pip, createdb, mlflow, dlbench), without
    comments and the `.venv/bin/` prefix."""
    text = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "--backend-store-uri postgresql://" in b]
    assert len(blocks) == 1, "README.md: expected one bash block with the several-machines recipe"
    recipe: dict[str, list[str]] = {}
    for line in blocks[0].splitlines():
        args = shlex.split(line, comments=True)
        if args:
            args[0] = args[0].removeprefix(".venv/bin/")
            recipe.setdefault(args[0], []).append(shlex.join(args))
    assert sorted(recipe) == ["createdb", "dlbench", "mlflow", "pip"], recipe
    assert len(recipe["mlflow"]) == len(recipe["dlbench"]) == 1, recipe
    return recipe


def _local(line: str, pg_port: int, port: int, shared: Path | None = None) -> list[str]:
    """A README line made to run here: the hosts `db` and `tracker` become 127.0.0.1, the user `user` the test
    server's superuser, port 5000 a free one, the server binds 127.0.0.1 rather than every interface, and the shared
    checkpoint folder is `shared`. The programs are this venv's and the PostgreSQL found. Nothing else changes."""
    if shared is not None:
        line = line.replace("/shared/dlbench-checkpoints", str(shared))
    line = (line.replace("user@db/", f"dlbench@127.0.0.1:{pg_port}/").replace("-h db -U user", f"-h 127.0.0.1 -p "
            f"{pg_port} -U dlbench").replace("tracker:5000", f"127.0.0.1:{port}")
            .replace("--host 0.0.0.0", "--host 127.0.0.1").replace("--port 5000", f"--port {port}"))
    assert not re.search(r"@db\b|-h db\b|\btracker\b|0\.0\.0\.0|--port 5000\b", line), \
        f"the README recipe changed form; adapt _local: {line}"
    args = shlex.split(line)
    if args[0] == "createdb":
        return [_pg_bin("createdb"), *args[1:]]
    return [sys.executable, "-m", args[0], *args[1:]]  # `mlflow ...`, `dlbench ...` of this venv


@pytest.fixture(scope="module")
def mlflow_server(postgres_port, tmp_path_factory):
    """The README's recipe up to its `mlflow server` command, run as written: the two databases created with
    `createdb`, then the server with its PostgreSQL backend, artifacts proxied into its folder. Yields its http URL."""
    recipe = _readme_recipe()
    for line in recipe["createdb"]:
        subprocess.run(_local(line, postgres_port, 0), check=True, capture_output=True, timeout=60)
    folder = tmp_path_factory.mktemp("mlflow-server")
    port, log = _free_port(), folder / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(_local(recipe["mlflow"][0], postgres_port, port), stdout=out, stderr=out, cwd=folder)
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


def test_the_readme_installs_the_driver_that_postgresql_urls_need():
    # `postgresql://` (no +driver) means the driver SQLAlchemy picks by default; the README's extra must install it.
    import sqlalchemy

    (install,) = _readme_recipe()["pip"]
    extras = re.search(r"\.\[([\w,]+)\]", install).group(1).split(",")
    module = sqlalchemy.engine.make_url("postgresql://u@h/d").get_dialect().import_dbapi().__name__.split(".")[0]
    providers = {d.lower() for d in importlib.metadata.packages_distributions().get(module, [])}
    required = [r for r in importlib.metadata.requires("dlbench") or []
                if any(f'extra == "{extra}"' in r for extra in extras)]
    assert any(re.match(r"[\w-]+", r).group().lower() in providers for r in required), (module, providers, required)


def test_advisory_lock_excludes_other_processes(postgres_url, tmp_path):
    # Two processes that share nothing but the database: the second gets the lock only after the first let go.
    script = (
        "import sys, time\n"
        "from dlbench.storage import claim_lock\n"
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


def test_the_readme_recipe_on_two_machines_shares_the_budget_exactly(postgres_port, mlflow_server, tmp_path):
    """The README's `dlbench run` line, on two "machines" started together against the README's `mlflow server`
    (PostgreSQL backend) and a PostgreSQL Optuna storage: every arm gets its budget of trials and one repeat per
    seed, no more, and a third run resumes without adding any."""
    port = int(mlflow_server.rsplit(":", 1)[1])
    cmd = _local(_readme_recipe()["dlbench"][0], postgres_port, port, shared=tmp_path / "shared-checkpoints")
    storage_url = cmd[cmd.index("--storage") + 1]
    assert storage_url.startswith("postgresql://")  # plain: the driver SQLAlchemy picks, as users write it
    spec = next(a for a in cmd if a.endswith(".toml"))
    cmd[cmd.index(spec)] = TINY
    cmd += ["--trials", "3", "--seeds", "2", "--no-progress"]

    procs = []
    for i in range(2):  # separate temp folders: any lock must go through the database
        tmp = tmp_path / f"machine-{i}"
        tmp.mkdir()
        procs.append(subprocess.Popen(cmd, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      # each "machine" shows one GPU (a fake list: this one has none)
                                      env={**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1",
                                           "DLBENCH_FAKE_GPUS": "0:Fake GPU"}))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n\n".join(o[-3000:] for o in outs)
    assert not any("View run" in o for o in outs)  # MLflow's line per run is not our output

    storage = optuna.storages.RDBStorage(storage_url)
    client = MlflowClient(tracking_uri=mlflow_server)
    exp_id = client.get_experiment_by_name("tiny").experiment_id

    def counts():
        out = {}
        for arm in ARMS:
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
        assert c["trials"] == ["COMPLETE"] * 3, (arm, c)
        assert c["trial_runs"] == ["FINISHED"] * 3, (arm, c)
        assert c["arm_runs"] == 1, (arm, c)
        assert c["seeds"] == [(0, "FINISHED"), (1, "FINISHED")], (arm, c)
    # Both workers claimed trials (they ran side by side, not one after the other).
    assert len(first["tanh"]["workers"] | first["relu"]["workers"]) == 2, first

    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "DLBENCH_FAKE_GPUS": "0:Fake GPU"})
    assert again.returncode == 0, again.stderr[-3000:]
    assert "tanh" in again.stdout and counts() == first
    report = dlbench("compare", "tiny", "--format", "json", "--storage", storage_url, "--tracking-uri",
                     mlflow_server)
    assert '"n": 2' in report.stdout


SECRET, TRACKER_SECRET = "s3cr3t-Pg-0b6f", "s3cr3t-Http-91c2"


def test_passwords_in_the_urls_never_reach_the_output(postgres_port, mlflow_server, tmp_path):
    # A role with a password and a database of its own. The throwaway server trusts every local connection, so the
    # password is never checked, but it is in the URL, which is what must not be printed. The tracking server has no
    # authentication and ignores the basic-auth credentials of the http URL.
    _sql(postgres_port, f"CREATE ROLE alice LOGIN PASSWORD '{SECRET}'", "CREATE DATABASE alice_optuna OWNER alice")
    storage = f"postgresql://alice:{SECRET}@127.0.0.1:{postgres_port}/alice_optuna"
    tracking = mlflow_server.replace("http://", f"http://bob:{TRACKER_SECRET}@")
    out = dlbench("run", TINY, "--quick", "--trials", "1", "--seeds", "1", "--epochs", "1", "--no-progress",
                  "--storage", storage, "--tracking-uri", tracking)
    text = out.stdout + out.stderr
    leaks = [line for line in text.splitlines() if SECRET in line or TRACKER_SECRET in line]
    assert not leaks, "\n".join(leaks)
    assert "alice:***@" in text  # the command still says where the run went
    # Nor is either password kept anywhere a run records: MLflow tags and parameters, Optuna's trial attributes.
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("tiny-quick")
    kept = [*exp.tags.values()]
    for run in client.search_runs([exp.experiment_id]):
        kept += [*run.data.tags.values(), *run.data.params.values()]
    for summary in optuna.get_all_study_summaries(storage):
        for trial in optuna.load_study(study_name=summary.study_name, storage=storage).trials:
            kept += [str(v) for v in [*trial.user_attrs.values(), *trial.system_attrs.values(), *trial.params.values()]]
    assert len(kept) > 20 and not [v for v in kept if SECRET in v or TRACKER_SECRET in v]


@pytest.mark.parametrize("where", ["refused", "no database"])
def test_a_bad_storage_url_is_an_input_error_without_its_password(where, postgres_port, capsys):
    from dlbench import cli

    port, db = (_free_port(), "postgres") if where == "refused" else (postgres_port, "no_such_db")
    rc = cli.main(["run", TINY, "--storage", f"postgresql://alice:{SECRET}@127.0.0.1:{port}/{db}", "--no-progress",
                   "--tracking-uri", "sqlite:///" + tempfile.mkdtemp() + "/mlflow.db"])
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    assert SECRET not in captured.out + captured.err
    assert f"--storage`: could not open the Optuna storage postgresql://alice:***@127.0.0.1:{port}/{db}" \
        in captured.err
    assert ("Connection refused" if where == "refused" else '"no_such_db" does not exist') in captured.err


@pytest.mark.parametrize("url, module, hint", [
    ("postgresql://user@127.0.0.1:1/optuna", "psycopg", "pip install 'dlbench[postgres]'"),
    ("postgresql+psycopg://user@127.0.0.1:1/optuna", "psycopg", "pip install 'dlbench[postgres]'"),
    ("postgresql+psycopg2://user@127.0.0.1:1/optuna", "psycopg2", "pip install psycopg2-binary"),
])
def test_a_missing_database_driver_is_a_clear_input_error(url, module, hint, monkeypatch, capsys):
    # No server needed: the driver import fails before any connection is made.
    from dlbench import cli

    monkeypatch.setitem(sys.modules, module, None)
    rc = cli.main(["run", TINY, "--storage", url.replace("user@", f"user:{SECRET}@"), "--no-progress",
                   "--tracking-uri", "sqlite:///" + tempfile.mkdtemp() + "/mlflow.db"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--storage" in err and f"needs {module}" in err and hint in err, err
    assert SECRET not in err and "user:***@" in err


@pytest.mark.parametrize("text, expected", [
    ("postgresql://user:secret@host/db", "postgresql://user:***@host/db"),
    ("postgresql+psycopg2://u:p%40ss@db:5432/optuna?sslmode=require",
     "postgresql+psycopg2://u:***@db:5432/optuna?sslmode=require"),
    ("http://user:pw@host", "http://user:***@host"),
    ("https://user:pw@tracker:5000/api/2.0/mlflow/runs/get?run_id=1",
     "https://user:***@tracker:5000/api/2.0/mlflow/runs/get?run_id=1"),
    ("postgresql://user@db/optuna?password=hunter2&sslmode=require",
     "postgresql://user@db/optuna?password=***&sslmode=require"),
    ("mysql://u@h/d?ssl_key=k&PASSWORD=x", "mysql://u@h/d?ssl_key=k&PASSWORD=***"),
    ("API request to http://bob:pw@t:5000/x failed; storage 'postgresql://a:b@h/d'",
     "API request to http://bob:***@t:5000/x failed; storage 'postgresql://a:***@h/d'"),
    ("host=db user=alice password='a b' dbname=optuna", "host=db user=alice password=*** dbname=optuna"),
    # Nothing to hide: unchanged.
    ("postgresql://dlbench@127.0.0.1:5432/postgres", "postgresql://dlbench@127.0.0.1:5432/postgres"),
    ("postgresql://db:5432/optuna", "postgresql://db:5432/optuna"),
    ("sqlite:///mlruns/mlflow.db", "sqlite:///mlruns/mlflow.db"),
    ("studies/", "studies/"),
])
def test_redact_masks_passwords_and_keeps_the_rest(text, expected):
    assert redact(text) == expected

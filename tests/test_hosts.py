"""Two workers on different hosts (DLBENCH_HOST) share one experiment with a 5-second stale threshold: live units
are never failed as dead while their heartbeats run, and a SIGKILLed worker's unit is taken over by the other host
once its heartbeat is stale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from conftest import ROOT, SPECS, write_spec
from dlbench.storage import open_storage

pytestmark = pytest.mark.e2e  # end to end: trains, spawns workers or starts servers

# Seed repeats of about 15 s (and trials as long): three times the threshold.
EPOCHS = "150"
STALE = 5


def _spec(tmp_path):
    text = (SPECS / "tiny.toml").read_text().replace("[fixed]", "[fixed]\ncheckpoint_every = 5")
    return write_spec(tmp_path, text.replace("n = 300", "n = 600"))


def _start(host: str, args: list[str], log):
    env = {**os.environ, "DLBENCH_HOST": host, "DLBENCH_STALE_AFTER": str(STALE), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "dlbench", "run", *args, "--no-progress"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def _tail(log, chars: int = 4000) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-chars:]


def _runs(uri: str):
    if not Path(uri[len("sqlite:///"):]).exists():  # opening it here would race the hosts creating it
        return None, []
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tiny")
    return client, (client.search_runs([exp.experiment_id], max_results=1000) if exp else [])


def _check_budget_and_seeds(storage: str, uri: str, seeds: int):
    study = optuna.load_study(study_name="tiny/tanh", storage=open_storage(storage))
    assert [t.number for t in study.trials] == [0, 1]  # the budget, exactly
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    _, runs = _runs(uri)
    repeats = [r for r in runs if r.data.tags.get("dlbench.role") == "repeat"]
    assert Counter(r.data.tags["dlbench.seed"] for r in repeats) == Counter(str(s) for s in range(seeds))
    assert all(r.info.status == "FINISHED" for r in runs if r.data.tags.get("dlbench.role") != "arm")
    return study, repeats


def test_two_hosts_share_the_work_and_a_killed_hosts_repeat_is_taken_over(stores, tmp_path):
    # Trials and repeats of ~15 s on two hosts with a 5 s threshold: while both live, nothing is taken for dead;
    # then host-a is SIGKILLed mid-repeat and host-b takes that repeat over once its heartbeat is stale.
    storage, uri = stores
    args = [str(_spec(tmp_path)), "--storage", storage, "--tracking-uri", uri, "--arms", "tanh", "--epochs", EPOCHS,
            "--seeds", "2", "--checkpoints", str(tmp_path / "ckpt")]
    with open(tmp_path / "a.log", "w+") as a, open(tmp_path / "b.log", "w+") as b:
        host_a, host_b = _start("host-a", args, a), _start("host-b", args, b)
        try:
            victim = None
            deadline = time.time() + 300
            while victim is None and time.time() < deadline:
                time.sleep(0.3)
                assert host_a.poll() is None, "host-a ended before it could be killed:\n" + _tail(a)
                _, runs = _runs(uri)
                running = {r.data.tags.get("dlbench.host"): r for r in runs
                           if r.data.tags.get("dlbench.role") == "repeat" and r.info.status == "RUNNING"}
                if "host-a" in running and "host-b" in running and \
                        list((tmp_path / "ckpt").rglob(f"{running['host-a'].info.run_id}.npz")):
                    victim = running["host-a"].info.run_id
            assert victim, "the two hosts never ran seed repeats side by side"
            os.kill(host_a.pid, signal.SIGKILL)
            host_a.wait(30)
            assert host_b.wait(600) == 0
        finally:
            for p in (host_a, host_b):
                if p.poll() is None:
                    p.kill()
        b.seek(0)
        b_log = b.read()
    study, repeats = _check_budget_and_seeds(storage, uri, seeds=2)
    assert {t.user_attrs["host"] for t in study.trials} == {"host-a", "host-b"}  # both hosts took a trial
    assert not any("takeovers" in t.user_attrs for t in study.trials)  # no live trial was taken for dead
    survivor = next(r for r in repeats if r.info.run_id != victim)
    assert "dlbench.takeovers" not in survivor.data.tags  # nor host-b's own repeat, live all along
    assert (survivor.info.end_time - survivor.info.start_time) / 1000 > STALE  # past the threshold
    client, _ = _runs(uri)
    run = client.get_run(victim)
    assert run.info.status == "FINISHED", b_log[-3000:]
    assert run.data.tags["dlbench.host"] == "host-b" and run.data.tags["dlbench.takeovers"] == "1"
    assert int(run.data.tags["dlbench.resumed_from_epoch"]) % 5 == 0
    assert [m.step for m in client.get_metric_history(victim, "loss")] == list(range(int(EPOCHS)))

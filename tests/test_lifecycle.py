"""How a unit ended, mapped once: outcome -> Optuna state, MLflow status and tags (no training)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from dlbench import leases, lifecycle, train
from dlbench import tracking as T
from dlbench.lifecycle import Outcome


@pytest.mark.parametrize("error,outcome,reason", [
    (optuna.TrialPruned("pruned after epoch 3"), Outcome.PRUNED, "pruned after epoch 3"),
    (train.Diverged(4, {"loss": float("nan")}), Outcome.DIVERGED, "diverged: non-finite loss at epoch 5"),
    (KeyboardInterrupt(), Outcome.INTERRUPTED, "interrupted by the user"),
    (ValueError("bad shape"), Outcome.CRASHED, "ValueError: bad shape"),
])
def test_each_exception_stands_for_one_outcome(error, outcome, reason):
    ending = lifecycle.ending_of(error)
    assert ending.outcome is outcome and ending.reason.startswith(reason)


def test_the_table_gives_every_outcome_its_optuna_state_and_tag():
    assert lifecycle.STATES == {
        Outcome.COMPLETE: (TrialState.COMPLETE, T.STATE_COMPLETE),
        Outcome.PRUNED: (TrialState.PRUNED, T.STATE_PRUNED),
        Outcome.DIVERGED: (TrialState.FAIL, T.STATE_FAIL),
        Outcome.INTERRUPTED: (TrialState.RUNNING, T.STATE_INTERRUPTED),  # left for the next run to resume
        Outcome.CRASHED: (TrialState.FAIL, T.STATE_FAIL),
        Outcome.WORKER_DIED: (TrialState.FAIL, T.STATE_FAIL),
    }


def test_diverged_trials_use_the_budget_and_crashed_ones_are_replaced():
    assert lifecycle.counts_toward_budget(TrialState.FAIL, "diverged: non-finite loss at epoch 2")
    assert not lifecycle.counts_toward_budget(TrialState.FAIL, "ValueError: bad shape")
    assert not lifecycle.counts_toward_budget(TrialState.FAIL, "worker died: process 7 on h stopped")
    assert all(lifecycle.counts_toward_budget(s, "") for s in (TrialState.COMPLETE, TrialState.PRUNED,
                                                              TrialState.RUNNING))


def test_a_crash_reason_never_keeps_a_password_from_a_url():
    ending = lifecycle.ending_of(ConnectionError("cannot reach postgresql://ann:hunter2@db/optuna"))
    assert "hunter2" not in ending.reason and "ann:***@db" in ending.reason


class FakeTracker:
    def __init__(self):
        self.calls = []

    def log_metrics(self, run_id, metrics):
        self.calls.append(("metrics", run_id, dict(metrics)))

    def set_tags(self, run_id, tags):
        self.calls.append(("tags", run_id, dict(tags)))

    def end_run(self, run_id, state, reason=None):
        self.calls.append(("end", run_id, state, reason))

    def flush(self, run_id):
        self.calls.append(("flush", run_id))


def _study():
    return optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")


def test_recorded_ends_the_run_before_telling_the_trial_and_swallows_a_crash():
    study, tracker, told = _study(), FakeTracker(), []
    trial = study.ask()
    with lifecycle.recorded(tracker, "run-1", study, trial, on_crash=told.append):
        raise RuntimeError("out of memory")
    assert tracker.calls[-1][:3] == ("end", "run-1", T.STATE_FAIL) and "out of memory" in tracker.calls[-1][3]
    assert study.trials[0].state == TrialState.FAIL and "out of memory" in study.trials[0].user_attrs["fail_reason"]
    assert told and told[0].outcome is Outcome.CRASHED


def test_recorded_completes_with_the_value_and_logs_final_metrics():
    study, tracker = _study(), FakeTracker()
    trial = study.ask()
    with lifecycle.recorded(tracker, "run-2", study, trial) as unit:
        unit.value, unit.metrics = 0.93, {"best_val_accuracy": 0.93}
    assert tracker.calls == [("metrics", "run-2", {"best_val_accuracy": 0.93}),
                             ("end", "run-2", T.STATE_COMPLETE, None)]
    assert study.trials[0].state == TrialState.COMPLETE and study.trials[0].value == 0.93


def test_ctrl_c_leaves_the_unit_running_for_the_next_run_and_is_raised_again():
    study, tracker = _study(), FakeTracker()
    trial = study.ask()
    with pytest.raises(KeyboardInterrupt):
        with lifecycle.recorded(tracker, "run-3", study, trial):
            raise KeyboardInterrupt
    assert ("tags", "run-3", {T.TAG_STATE: T.STATE_INTERRUPTED}) in tracker.calls
    assert not any(c[0] == "end" for c in tracker.calls)
    assert study.trials[0].state == TrialState.RUNNING


def test_pruned_runs_say_where_and_finish():
    study, tracker = _study(), FakeTracker()
    trial = study.ask()
    with lifecycle.recorded(tracker, "run-4", study, trial):
        raise optuna.TrialPruned("pruned after epoch 3")
    assert ("tags", "run-4", {T.TAG_PRUNED_AT: "pruned after epoch 3"}) in tracker.calls
    assert tracker.calls[-1] == ("end", "run-4", T.STATE_PRUNED, None)
    assert study.trials[0].state == TrialState.PRUNED


def test_a_unit_taken_over_by_another_worker_is_dropped_without_a_write():
    study, tracker, told = _study(), FakeTracker(), []
    trial = study.ask()
    with lifecycle.recorded(tracker, "run-5", study, trial, on_crash=told.append):
        raise leases.LeaseLost("taken over by process 7 on host-b")
    rival = {"host": "host-b", "pid": "7", "pid_start": "", "heartbeat": "1.0"}
    with leases.Heartbeat(lambda fields: None, read=lambda: rival, every=60) as lease:  # lost just as it finished
        with lifecycle.recorded(tracker, "run-5", study, trial, on_crash=told.append, lease=lease) as unit:
            unit.value = 0.9
    assert tracker.calls == [] and study.trials[0].state == TrialState.RUNNING  # the other worker's to record
    assert [e.outcome for e in told] == [Outcome.LOST, Outcome.LOST]
    assert told[0].headline == "dropped: taken over by process 7 on host-b"

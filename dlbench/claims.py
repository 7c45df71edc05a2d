"""Claims: under the claim lock, the next unit a worker runs, and the lease it writes on it.

A unit whose holder died (`leases.alive`) is taken over first: a trial keeps its number, parameters and MLflow
run; a seed repeat its run; both resume from their checkpoints. Otherwise a new trial while the arm's budget lasts,
or the next seed not yet repeated. A unit whose workers died MAX_TAKEOVERS times is failed instead (a configuration
that kills its worker, e.g. by running out of memory, would otherwise be retried for ever).
"""

from __future__ import annotations

from typing import Callable

import optuna
from optuna.trial import TrialState

from dlbench import leases, lifecycle, storage
from dlbench import tracking as T
from dlbench.lifecycle import Ending, Outcome
from dlbench.spec import Experiment

MAX_TAKEOVERS = 2
# Optuna user attributes of a trial (mirrors of MLflow tags).
A_RUN_ID = "mlflow_run_id"
A_TAKEOVERS = "takeovers"
# Where a seed repeat's holder is written: its MLflow tags.
HOLDER_TAGS = {"host": T.TAG_HOST, "pid": T.TAG_PID, "pid_start": T.TAG_PID_START, "heartbeat": T.TAG_HEARTBEAT}


class RunError(RuntimeError):
    """A failure at run time (exit status 1): the message says what happened and what to do."""


def trial_lease(trial: optuna.Trial) -> leases.Writer:
    """Writes a trial's holder into its Optuna user attributes."""
    def write(fields) -> None:
        for k, v in fields.items():
            trial.set_user_attr(k, v)

    return write


def trial_holder(trial: optuna.Trial) -> leases.Reader:
    """Reads a trial's holder as stored (another worker may have taken it over)."""
    return lambda: storage.stored_user_attrs(trial)


def holder_tags(fields) -> dict[str, str]:
    return {HOLDER_TAGS[k]: v for k, v in fields.items()}


def repeat_lease(tracker: T.Tracker, run_id: str) -> leases.Writer:
    """Writes a seed repeat's holder into its MLflow tags."""
    return lambda fields: tracker.set_tags(run_id, holder_tags(fields))


def repeat_holder(tracker: T.Tracker, run_id: str) -> leases.Reader:
    """Reads a seed repeat's holder from its MLflow tags."""
    def read():
        tags = tracker.run(run_id).data.tags
        return {k: tags.get(tag) for k, tag in HOLDER_TAGS.items()}

    return read


def _takeovers(count, holder: leases.Holder | None) -> int:
    """How often the unit will have been taken over after this time (a released unit's holder did not die)."""
    return int(count or 0) + (0 if holder and holder.released else 1)


def _died(holder: leases.Holder | None, times: int) -> str:
    who = f"process {holder.pid} on {holder.host}" if holder else "a worker"
    return (f"worker died: {who} stopped while running it; its workers died {times} times, so it is not taken "
            "over again")


class Claims:
    """The claims of one worker on one experiment's units."""

    def __init__(self, exp: Experiment, lock, tracker: T.Tracker):
        self.exp = exp
        self.lock = lock
        self.tracker = tracker

    # --- trials ---

    def budget_used(self, study: optuna.Study) -> tuple[int, int]:
        """(trials that count toward the budget, trials that crashed and are replaced); see
        `lifecycle.counts_toward_budget`."""
        used = crashed = 0
        for t in study.get_trials(deepcopy=False):
            if lifecycle.counts_toward_budget(t.state, str(t.user_attrs.get(lifecycle.A_REASON, ""))):
                used += 1
            elif t.state == TrialState.FAIL:
                crashed += 1
        return used, crashed

    def _sweep_runs(self, arm: str, study: optuna.Study) -> None:
        """End FAILED the MLflow trial runs still RUNNING whose Optuna trial is over (their worker died between
        the two writes, or before linking them)."""
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        for run in self.tracker.runs(role=T.ROLE_TRIAL, arm=arm, status="RUNNING"):
            if states.get(int(run.data.tags.get(T.TAG_TRIAL, -1))) != TrialState.RUNNING:
                self.tracker.end_run(run.info.run_id, T.STATE_FAIL, "worker died before finishing this run")

    def trial(self, arm: str, study: optuna.Study) -> optuna.Trial | None:
        """A trial whose worker died (taken over), else a new one while the budget lasts, else None."""
        with self.lock:
            self._sweep_runs(arm, study)
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                holder = leases.Holder.parse(t.user_attrs)
                if leases.alive(holder):
                    continue
                takeovers = _takeovers(t.user_attrs.get(A_TAKEOVERS), holder)
                if takeovers > MAX_TAKEOVERS:
                    lifecycle.record(Ending(Outcome.WORKER_DIED, _died(holder, takeovers)), self.tracker,
                                     t.user_attrs.get(A_RUN_ID), study, t)
                    continue
                trial = storage.adopt_trial(study, t)
                trial_lease(trial)({**leases.me().fields(), A_TAKEOVERS: str(takeovers)})
                return trial
            used, crashed = self.budget_used(study)
            if used >= self.exp.budget.trials:
                return None
            if crashed >= max(3, self.exp.budget.trials):
                raise RunError(f"arm {arm!r}: {crashed} trials crashed (not diverged); see their "
                               f"`{T.TAG_REASON}` tag in MLflow. Fix the cause and run again: finished trials are kept.")
            trial = study.ask()
            trial_lease(trial)(leases.me().fields())
            return trial

    # --- seed repeats ---

    def seed(self, arm: str, config: str, new_run: Callable[[int], str]) -> tuple[int, str, bool] | None:
        """(seed, run id, taken over): a repeat whose worker died (taken over in its run), else the next seed not
        yet run in a new run from `new_run(seed)` (which writes this worker's holder); None when all are taken."""
        with self.lock:
            taken, crashed, orphan = set(), 0, None
            for r in self.tracker.runs(role=T.ROLE_REPEAT, arm=arm, config_hash=config):
                seed, tags = int(r.data.tags[T.TAG_SEED]), r.data.tags
                if r.info.status == "RUNNING":
                    holder = leases.Holder.parse({k: tags.get(tag) for k, tag in HOLDER_TAGS.items()})  # see repeat_holder
                    takeovers = _takeovers(tags.get(T.TAG_TAKEOVERS), holder)
                    if leases.alive(holder):
                        taken.add(seed)
                    elif takeovers > MAX_TAKEOVERS:
                        lifecycle.record(Ending(Outcome.WORKER_DIED, _died(holder, takeovers)), self.tracker,
                                         r.info.run_id)
                        crashed += 1
                    else:
                        taken.add(seed)
                        orphan = orphan or (seed, r.info.run_id, takeovers)
                elif r.info.status == "FINISHED" or tags.get(T.TAG_REASON, "").startswith(lifecycle.DIVERGED):
                    taken.add(seed)
                else:
                    crashed += 1
            if orphan:
                seed, run_id, takeovers = orphan
                self.tracker.set_tags(run_id, {**holder_tags(leases.me().fields()), T.TAG_TAKEOVERS: takeovers})
                return seed, run_id, True
            todo = [s for s in range(self.exp.seeds) if s not in taken]
            if not todo:
                return None
            if crashed >= max(3, self.exp.seeds):
                raise RunError(f"arm {arm!r}: {crashed} seed repeats crashed; see their `{T.TAG_REASON}` tag in MLflow")
            return todo[0], new_run(todo[0]), False

"""How a unit of work ended: one table from outcome to Optuna state, MLflow status and tags, and one recorder.

Every claimed unit (tuning trial, seed repeat) runs inside `recorded(...)`; however it ends (finished, pruned,
diverged, interrupted, crashed) the MLflow run is ended first and the Optuna trial told second: another worker's
sweep fails MLflow runs still RUNNING whose trial is finished, so the other order would race with it. A unit whose
worker died is recorded through the same table by the worker that reaps it (`record`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import traceback
from typing import Any, Callable, Iterator

import optuna
from optuna.trial import TrialState

from dlbench import leases, storage, train
from dlbench import tracking as T

A_REASON = "fail_reason"  # Optuna user attribute mirroring the MLflow tag T.TAG_REASON
DIVERGED = "diverged"


class Outcome(enum.Enum):
    COMPLETE = "complete"
    PRUNED = "pruned"
    DIVERGED = "diverged"  # a real outcome of the configuration: counts toward the budget, never retried
    INTERRUPTED = "interrupted"  # Ctrl-C: left running, lease released; the next run resumes it
    CRASHED = "crashed"  # an exception: failed and replaced
    WORKER_DIED = "worker died"  # reaped by another worker after repeated deaths of its holders
    LOST = "taken over"  # another worker judged this one dead and took the unit over: recorded by them, not here


# outcome -> (Optuna trial state, dlbench.state tag); MLflow status follows the tag (T.end_run). LOST has none.
STATES: dict[Outcome, tuple[TrialState, str]] = {
    Outcome.COMPLETE: (TrialState.COMPLETE, T.STATE_COMPLETE),
    Outcome.PRUNED: (TrialState.PRUNED, T.STATE_PRUNED),
    Outcome.DIVERGED: (TrialState.FAIL, T.STATE_FAIL),
    Outcome.INTERRUPTED: (TrialState.RUNNING, T.STATE_INTERRUPTED),
    Outcome.CRASHED: (TrialState.FAIL, T.STATE_FAIL),
    Outcome.WORKER_DIED: (TrialState.FAIL, T.STATE_FAIL),
}


def counts_toward_budget(state: TrialState, reason: str) -> bool:
    """Finished, pruned, diverged and running trials use the budget; crashed and killed ones are replaced."""
    return state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) or (
        state == TrialState.FAIL and reason.startswith(DIVERGED))


@dataclasses.dataclass
class Ending:
    outcome: Outcome
    reason: str = ""
    value: float | list[float] | None = None  # the trial's objective value(s), when complete
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # final metrics, when complete

    @property
    def headline(self) -> str:
        """One line for the console: 'failed: <reason>' ('dropped: ...' for a unit another worker took over)."""
        first = self.reason.splitlines()[0] if self.reason else ""
        return f"{'dropped' if self.outcome is Outcome.LOST else 'failed'}: {first}"


def ending_of(error: BaseException) -> Ending:
    """The outcome an exception raised by a unit's body stands for."""
    if isinstance(error, optuna.TrialPruned):
        return Ending(Outcome.PRUNED, str(error))
    if isinstance(error, train.Diverged):
        return Ending(Outcome.DIVERGED, f"{DIVERGED}: non-finite loss at epoch {error.epoch + 1}")
    if isinstance(error, KeyboardInterrupt):
        return Ending(Outcome.INTERRUPTED, "interrupted by the user")
    # The reason becomes a tag and a user attribute: credentials in a URL it quotes are masked.
    return Ending(Outcome.CRASHED,
                  storage.redact(f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=5)}"))


def record(ending: Ending, tracker: T.Tracker, run_id: str | None, study: optuna.Study | None = None,
           trial: Any = None) -> None:
    """Write how a unit ended: its MLflow run first, then its Optuna trial (a `Trial`, or a `FrozenTrial` being
    reaped for a dead worker)."""
    state, tag = STATES[ending.outcome]
    if ending.outcome is Outcome.INTERRUPTED:  # nothing ends: the next run resumes it
        if run_id:
            tracker.flush(run_id)
            tracker.set_tags(run_id, {T.TAG_STATE: tag})
        return
    if run_id:
        if ending.metrics:
            tracker.log_metrics(run_id, ending.metrics)
        if ending.outcome is Outcome.PRUNED:
            tracker.set_tags(run_id, {T.TAG_PRUNED_AT: ending.reason})
        tracker.end_run(run_id, tag, ending.reason if tag == T.STATE_FAIL else None)
    if trial is None:
        return
    if isinstance(trial, optuna.trial.FrozenTrial):  # reaped: its own worker can no longer tell it
        storage.fail_trial(study, trial, ending.reason)
        return
    if tag == T.STATE_FAIL:
        trial.set_user_attr(A_REASON, ending.reason[:2000])
    if state == TrialState.COMPLETE:
        study.tell(trial, ending.value)
    else:
        study.tell(trial, state=state)


class Box:
    """What a unit's body hands back: its MLflow run, and when it finishes its objective value and final metrics."""

    def __init__(self, run_id: str | None):
        self.run_id = run_id
        self.value: float | list[float] | None = None  # a list in a multi-objective study
        self.metrics: dict[str, float] = {}


@contextlib.contextmanager
def recorded(tracker: T.Tracker, run_id: str | None, study: optuna.Study | None = None, trial: Any = None,
             on_crash: Callable[[Ending], None] | None = None, lease: leases.Heartbeat | None = None) -> Iterator[Box]:
    """Run a unit's body and record its ending, whatever it is. A crash is recorded and swallowed (the study
    goes on, `on_crash` is told); Ctrl-C and other BaseExceptions are recorded and raised again (the caller's
    lease, released on the way out, lets the next run resume the unit). A unit another worker took over
    (`leases.LeaseLost`, from the body or from `lease` checked before recording) is theirs: nothing is recorded,
    `on_crash` is told."""
    box = Box(run_id)
    try:
        yield box
        if lease is not None:
            lease.check(now=True)
    except leases.LeaseLost as e:
        if on_crash is not None:
            on_crash(Ending(Outcome.LOST, str(e)))
        return
    except BaseException as e:  # noqa: BLE001 - every ending is recorded
        ending = ending_of(e)
        record(ending, tracker, box.run_id, study, trial)
        if not isinstance(e, Exception):
            raise
        if ending.outcome is Outcome.CRASHED and on_crash is not None:
            on_crash(ending)
        return
    record(Ending(Outcome.COMPLETE, value=box.value, metrics=box.metrics), tracker, box.run_id, study, trial)

"""The Python API: load a spec, run it, compare its arms; the CLI is a thin layer over these three functions.

    import dlbench
    exp = dlbench.load_spec("experiments/dropout.toml", trials=8, **{"dataset.train_size": 1000})
    report = dlbench.run(exp, workers=2)       # tune, repeat, compare (resumes like the CLI)
    report.to_frame()                          # one row per arm: the columns of `dlbench compare --format csv`
    report.comparisons_frame()                 # one row per arm against the baseline
    report.plots()                             # {name: PNG path} of the comparison's figures

Storage and tracking default exactly as on the command line: `DLBENCH_STORAGE` (else studies/) and
`MLFLOW_TRACKING_URI` (else sqlite:///mlruns/mlflow.db).
"""

from __future__ import annotations

import dataclasses
import html
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from dlbench.spec import Experiment, SpecError

__all__ = ["load_spec", "run", "compare", "Report"]

_BUDGET_KEYS = ("trials", "epochs", "seeds", "arms", "name")


def _storage_url(storage: str | None = None) -> str:
    """The Optuna storage: the argument, else $DLBENCH_STORAGE, else studies/."""
    return storage or os.environ.get("DLBENCH_STORAGE") or "studies/"


def _tracking_uri(uri: str | None = None) -> str:
    """The MLflow tracking URI: the argument, else $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db."""
    from dlbench.tracking import default_uri  # noqa: PLC0415 - keeps `dlbench list` and `--help` free of mlflow

    return uri or default_uri()


def load_spec(spec: str | Path | Mapping[str, Any] | Experiment, /, *, sets: Sequence[str] = (),
              **overrides: Any) -> Experiment:
    """Load and check an experiment, with overrides, exactly as `dlbench run` does before it starts.

    Args:
        spec: a spec file (TOML), a mapping of the same content, or an Experiment (returned as is, overridden).
        sets: `--set` strings, "dotted.key=TOML value".
        **overrides: `trials`, `epochs`, `seeds`, `arms` (a list) and `name` change the budget and name like the
            CLI flags; any other key is a dotted spec key (`"fixed.width"`, or `fixed__width`) set to a Python
            value, like `--set`: validated like the file, and the experiment is renamed unless `name` is given.

    Raises:
        SpecError: naming the file, the field and what is allowed.
    """
    from dlbench import spaces  # noqa: PLC0415
    from dlbench.progress import quiet_libraries  # noqa: PLC0415

    quiet_libraries()
    budget = {k: overrides.pop(k) for k in _BUDGET_KEYS if k in overrides}
    if isinstance(budget.get("arms"), str):
        budget["arms"] = [a.strip() for a in budget["arms"].split(",") if a.strip()]
    items = [*sets, *((k.replace("__", "."), v) for k, v in overrides.items())]
    name = budget.pop("name", None)
    from dlbench import spec as S  # noqa: PLC0415

    if isinstance(spec, Experiment) and not items:  # already checked: only the budget changes
        exp = S.with_overrides(spec, **budget) if any(v is not None for v in budget.values()) else spec
    else:
        exp = spaces.load(S.to_raw(spec) if isinstance(spec, Experiment) else spec, items, **budget)
    return S.with_overrides(exp, name=name) if name is not None else exp


def run(spec: str | Path | Mapping[str, Any] | Experiment, /, *, workers: int = 1,
        gpus: str | Sequence[int | str] | None = None, workers_per_gpu: int = 1, storage: str | None = None,
        tracking_uri: str | None = None, quick: bool = False, progress: bool | None = None,
        checkpoints: str | None = None, sets: Sequence[str] = (), **overrides: Any) -> "Report":
    """Tune every arm, repeat each arm's best configuration over the seeds, and compare: `dlbench run`.

    Re-running resumes (finished trials are kept). Args as the CLI's flags; `overrides` as in `load_spec`.
    `quick` is the smoke run (2 trials, 2 seeds, 2 epochs, stored as `<name>-quick`). `progress` None draws bars
    on a terminal or in a notebook.

    Returns:
        The comparison Report (also logged to the experiment's `comparison` run in MLflow).

    Raises:
        SpecError: bad spec, overrides or flags (nothing ran). study.RunError: workers that failed.
    """
    from dlbench import reporting, study  # noqa: PLC0415
    from dlbench.spec import with_overrides  # noqa: PLC0415
    from dlbench.storage import redact  # noqa: PLC0415

    exp = load_spec(spec, sets=sets, **overrides)
    if quick:
        exp = with_overrides(exp, trials=overrides.get("trials") or 2, seeds=overrides.get("seeds") or 2,
                             epochs=overrides.get("epochs") or 2, name=f"{exp.name}-quick")
    settings = study.Settings(storage=_storage_url(storage), tracking_uri=_tracking_uri(tracking_uri),
                              workers=workers, progress=progress, gpus=_placed(gpus, workers, workers_per_gpu),
                              workers_per_gpu=workers_per_gpu,
                              checkpoints=checkpoints or os.environ.get("DLBENCH_CHECKPOINTS"))
    models_used = "+".join(sorted({exp.model_for(a) for a in exp.arms}))
    print(f"dlbench: {exp.name}: {len(exp.arms)} arms x ({exp.budget.trials} trials + {exp.seeds} seeds) x "
          f"{exp.budget.epochs} epochs on {exp.dataset.name}/{models_used}; storage {redact(settings.storage)}, "
          f"tracking {redact(settings.tracking_uri)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    study.run(exp, settings)
    try:
        result, note = reporting.report(exp, settings.storage, settings.tracking_uri), ""
    except SpecError as e:  # nothing to compare: every trial or repeat failed
        result, note = None, e.message
    return Report(result, exp, settings.storage, settings.tracking_uri, seconds=time.perf_counter() - start,
                  note=note)


def _placed(gpus: str | Sequence[int | str] | None, workers: int, workers_per_gpu: int) -> tuple[str, ...]:
    """The GPUs to place workers on (`--gpus`), checked like the CLI's flags."""
    if gpus is None:
        if workers_per_gpu != 1:
            raise SpecError("command line", "--workers-per-gpu", "only applies with --gpus")
        return ()
    from dlbench import gpus as G  # noqa: PLC0415

    if workers != 1:
        raise SpecError("command line", "--workers", "with --gpus the number of workers is GPUs x "
                        "--workers-per-gpu; use --workers-per-gpu instead")
    text = gpus if isinstance(gpus, str) else ",".join(str(g) for g in gpus)
    try:
        return tuple(G.select(text, G.detect()))
    except ValueError as e:
        raise SpecError("command line", "--gpus", str(e)) from None


def compare(spec_or_name: str | Path | Experiment, /, *, storage: str | None = None,
            tracking_uri: str | None = None, write: bool = True) -> "Report":
    """The comparison of an experiment's arms from the stores (no training): `dlbench compare`.

    Args:
        spec_or_name: a spec file, an experiment name in the tracking store, or an Experiment.
        write: also update the experiment's `comparison` run in MLflow (the CLI's default; --no-log is False).
    """
    from dlbench import gather, reporting  # noqa: PLC0415

    uri = _tracking_uri(tracking_uri)
    exp = spec_or_name if isinstance(spec_or_name, Experiment) else gather.resolve(str(spec_or_name), uri)
    url = _storage_url(storage)
    return Report(reporting.report(exp, url, uri, write=write), exp, url, uri)


class Report:
    """A comparison: per-arm statistics, tests against the baseline, and its figures.

    Attributes of the underlying result (`arms`, `comparisons`, `metric`, `baseline`, ...) read through.
    `result` is None (and `note` says why) when a run ended with nothing to compare: every trial or repeat failed.
    """

    def __init__(self, result: Any, exp: Experiment, storage: str, tracking_uri: str, seconds: float | None = None,
                 note: str = ""):
        self.result = result
        self.note = note
        self.experiment = exp
        self.storage = storage
        self.tracking_uri = tracking_uri
        self.seconds = seconds
        self._plots: dict[str, Path] | None = None

    def __getattr__(self, name: str) -> Any:
        if name in ("result", "note") or self.__dict__.get("result") is None:
            raise AttributeError(name)
        return getattr(self.result, name)

    def to_frame(self):
        """One row per arm, indexed by arm: the columns of the table (`dlbench compare --format csv`)."""
        import pandas as pd  # noqa: PLC0415

        from dlbench import reporting  # noqa: PLC0415

        frame = pd.DataFrame(reporting.rows(self.result))
        frame["arm"] = [a.arm for a in self.result.arms]
        return frame.set_index("arm")

    def comparisons_frame(self):
        """One row per arm against the baseline: difference with its CI, p-values, Hedges' g, verdict."""
        import pandas as pd  # noqa: PLC0415

        rows = [dataclasses.asdict(c) for c in self.result.comparisons]
        return pd.DataFrame(rows).set_index("arm") if rows else pd.DataFrame()

    def plots(self, folder: str | Path | None = None) -> dict[str, Path]:
        """Draw the comparison's figures (learning curves, distribution, expected best vs trials, Optuna history
        and importance per arm) as PNGs into `folder` (default: a temporary folder kept for this Report).

        Returns:
            {figure name: PNG path}.
        """
        from dlbench import reporting  # noqa: PLC0415
        from dlbench import tracking as T  # noqa: PLC0415

        if self._plots is not None and folder is None:
            return self._plots
        out = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="dlbench-plots-"))
        out.mkdir(parents=True, exist_ok=True)
        tracker = T.Tracker(self.tracking_uri, self.experiment.name)
        paths = reporting.plots(self.result, self.experiment, self.storage, tracker, out)
        found = {p.stem: p for p in paths}
        if folder is None:
            self._plots = found
        return found

    def to_markdown(self) -> str:
        from dlbench import reporting  # noqa: PLC0415

        return reporting.format_report(self.result, "md")

    def to_json(self) -> str:
        return self.result.to_json()

    def __str__(self) -> str:
        from dlbench import reporting  # noqa: PLC0415

        if self.result is None:
            return f"no comparison: {self.note}"
        return reporting.format_report(self.result, "table")

    def __repr__(self) -> str:
        if self.result is None:
            return f"<dlbench.Report {self.experiment.name!r}: no comparison>"
        verdicts = ", ".join(f"{c.arm}: {c.verdict}" for c in self.result.comparisons)
        return f"<dlbench.Report {self.result.experiment!r} ({self.result.metric}; {verdicts})>"

    def _repr_html_(self) -> str:
        """The table and verdicts for Jupyter."""
        r = self.result
        if r is None:
            return f"<p>{html.escape(str(self))}</p>"
        frame = self.to_frame()
        shown = [c for c in ("n", "mean", "std", "ci95_low", "ci95_high", "diff", "p_holm", "hedges_g", "verdict",
                             "published") if c in frame.columns]
        head = (f"<h4>{html.escape(r.experiment)}: {html.escape(r.metric)} "
                f"({'higher' if r.higher_is_better else 'lower'} is better), baseline {html.escape(r.baseline)}</h4>")
        notes = f"<p>{html.escape(r.budget_note)}</p>"
        return head + frame[shown].to_html(float_format=lambda x: f"{x:.4g}", na_rep="") + notes

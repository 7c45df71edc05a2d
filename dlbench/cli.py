"""Command line: `dlbench run | compare | list | ui`. Thin: parse, call one function, return an exit status.

Exit status: 0 success, 2 invalid input (bad spec, unknown name, bad flag) or a dataset that is not on this
machine and cannot be downloaded, 1 failure at run time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlbench.progress import quiet_libraries

EXPERIMENTS_DIR = Path("experiments")
LISTS = ("models", "datasets", "experiments", "techniques")  # what `dlbench list` prints

RUN_HELP = """\
Tune every arm of the ablation with Optuna under the same budget, re-run each arm's best configuration with
several seeds (seed s = same data order and initial-weight seed in every arm), and print the per-arm results.
Everything is logged to MLflow (experiment = the spec's `name`). Re-running the same command resumes: finished
trials are kept and count toward the budget; a trial or seed repeat left running by a killed or interrupted run
is taken over and continued from its last checkpoint (every `checkpoint_every` epochs, default 5).

Environment: DLBENCH_STORAGE and MLFLOW_TRACKING_URI (the stores), DLBENCH_CHECKPOINTS (checkpoint folder),
DLBENCH_STALE_AFTER (seconds without a heartbeat before another machine's worker counts as dead; default 600).
Credentials in storage and tracking URLs are masked in everything dlbench prints."""


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and a one-paragraph message (its default, made explicit)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"dlbench: error: {message}\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dlbench", description="Tuned, tracked and statistically compared deep-learning ablations.",
                epilog="Defaults: storage studies/ ($DLBENCH_STORAGE), tracking sqlite:///mlruns/mlflow.db "
                       "($MLFLOW_TRACKING_URI). See README.md.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,compare,list,ui,dashboard}")

    r = sub.add_parser("run", help="tune, repeat and compare the arms of an experiment", description=RUN_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("spec", help="experiment file, e.g. experiments/relu_vs_sigmoid.toml")
    r.add_argument("--trials", type=_positive, help="tuning trials per arm (overrides budget.trials)")
    r.add_argument("--epochs", type=_positive, help="epochs per trial and repeat (overrides budget.epochs; "
                                                     "changes the experiment, so it cannot resume other epochs)")
    r.add_argument("--seeds", type=_positive, help="seed repeats of each arm's best configuration (overrides seeds)")
    r.add_argument("--arms", help="comma-separated subset of arms to run, e.g. relu,sigmoid")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one value of the spec (repeatable): a dotted key and a TOML value, e.g. --set "
                        "dataset.train_size=1000 --set fixed.width=512. The variant is stored as experiment "
                        "'<name>.<key>-<value>', e.g. dropout.train_size-1000 (unless you --set name=...), apart from the spec's own results")
    r.add_argument("--workers", type=_positive, default=1,
                   help="worker processes on this machine sharing the studies (CPU threads are divided between "
                        "them); run the same command on other machines with a shared --storage to scale out")
    r.add_argument("--gpus", default=None, metavar="all|0,1,3",
                   help="place workers on these GPUs: one worker process per GPU (times --workers-per-gpu), each "
                        "seeing only its GPU (CUDA_VISIBLE_DEVICES), with memory growth on so workers can share one")
    r.add_argument("--workers-per-gpu", type=_positive, default=1, metavar="K",
                   help="worker processes per GPU with --gpus (default 1)")
    r.add_argument("--checkpoints", default=None, metavar="DIR",
                   help="folder for training checkpoints (default: checkpoints/ beside the storage folder, or "
                        "$DLBENCH_CHECKPOINTS); with workers on several machines, a folder they all share")
    r.add_argument("--storage", default=None, help="Optuna storage: a folder (journal file, default studies/) or "
                                                   "a database URL such as postgresql://user@host/db")
    r.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db; "
                                                        "an http:// URL for a shared tracking server)")
    r.add_argument("--quick", action="store_true",
                   help="smoke run that exercises every stage: 2 trials, 2 seed repeats and 2 epochs per arm, "
                        "stored as experiment '<name>-quick' so it never mixes with real results")
    r.add_argument("--no-progress", action="store_true", help="no progress bars even on a terminal")

    c = sub.add_parser("compare", help="the comparison of an experiment's arms, from the stores (no training)",
                       description="Per-arm statistics over seed repeats (mean, std, 95% CI), differences to the "
                                   "baseline with Welch, Mann-Whitney and paired tests, Holm-corrected, Hedges' g, "
                                   "verdicts, the tuning summary and the published reference. Also written with its "
                                   "plots to the experiment's `comparison` run in MLflow.")
    c.add_argument("spec_or_name", help="experiment file or experiment name, e.g. relu-vs-sigmoid")
    c.add_argument("--format", default="table", help="comma-separated: table, md, csv, json (default table)")
    c.add_argument("--storage", default=None, help="Optuna storage (default studies/)")
    c.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db)")
    c.add_argument("--no-log", action="store_true", help="print only; do not update the `comparison` run")

    ls = sub.add_parser("list", help="registered models, datasets, shipped experiments and technique switches",
                        description="List what is registered, one line each with a short description. "
                                    "`dlbench list techniques` prints every technique switch a spec can set "
                                    "([fixed], [search] or an arm): its values, default and the models it applies to.")
    ls.add_argument("what", nargs="?", default="models,datasets,experiments",
                    help=f"comma-separated: {', '.join(LISTS)} (default: models,datasets,experiments)")

    db = sub.add_parser("dashboard", help="open optuna-dashboard on 127.0.0.1 over the Optuna studies",
                        description="Start optuna-dashboard (the `dashboard` extra: pip install -e '.[dashboard]') "
                                    "on 127.0.0.1 over the storage: every arm's study, its trials, parameters and "
                                    "Optuna's plots, live while a run goes on (Ctrl-C stops it).")
    db.add_argument("--port", type=_positive, default=8080, help="port (default 8080)")
    db.add_argument("--storage", default=None, help="Optuna storage (default studies/, or $DLBENCH_STORAGE)")

    ui = sub.add_parser("ui", help="open the MLflow UI on 127.0.0.1 over this project's store",
                        description="Start the MLflow UI on 127.0.0.1 (Ctrl-C stops it).")
    ui.add_argument("--port", type=_positive, default=5000, help="port (default 5000)")
    ui.add_argument("--tracking-uri", default=None, help="tracking store (default sqlite:///mlruns/mlflow.db)")
    return p


def cmd_run(args) -> int:
    from dlbench import api

    report = api.run(args.spec, workers=args.workers, gpus=args.gpus, workers_per_gpu=args.workers_per_gpu,
                     storage=args.storage, tracking_uri=args.tracking_uri, quick=args.quick,
                     progress=False if args.no_progress else None, checkpoints=args.checkpoints, sets=args.set,
                     trials=args.trials, epochs=args.epochs, seeds=args.seeds, arms=args.arms)
    from dlbench.storage import redact
    from dlbench.tracking import ui_command

    if report.result is None:  # nothing to compare: every trial or repeat failed
        print(f"dlbench: no comparison: {report.note}", file=sys.stderr)
    else:
        print(report)
    print(f"\nfinished in {report.seconds:.0f} s. Compare the runs in the MLflow UI: "
          f"{redact(ui_command(report.tracking_uri))}")
    return 0


def cmd_compare(args) -> int:
    from dlbench import api, reporting

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in reporting.FORMATS]
    if bad:
        print(f"dlbench compare: unknown format {bad[0]!r}; choose from {', '.join(reporting.FORMATS)}",
              file=sys.stderr)
        return 2
    report = api.compare(args.spec_or_name, storage=args.storage, tracking_uri=args.tracking_uri,
                         write=not args.no_log)
    print("\n\n".join(reporting.format_report(report.result, f) for f in formats))
    return 0


def cmd_list(args) -> int:
    wanted = [w.strip() for w in args.what.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in LISTS]
    if unknown:
        print(f"dlbench list: unknown kind {unknown[0]!r}; choose from {', '.join(LISTS)}", file=sys.stderr)
        return 2
    if "models" in wanted or "datasets" in wanted:
        from dlbench import plugins

        plugins.load_entry_points()
    for kind in ("models", "datasets"):
        if kind in wanted:
            from dlbench import data, models

            registry = models if kind == "models" else data
            print(f"{kind}:")
            for name in registry.names():
                entry = registry.get(name)
                plugin = f" [plugin: {entry.source}, source sha256 {entry.digest}]" if entry.source else ""
                print(f"  {name:<18}{entry.description}{plugin}")
    if "experiments" in wanted:
        import tomllib

        print(f"experiments ({EXPERIMENTS_DIR}/):")
        for path in sorted(EXPERIMENTS_DIR.rglob("*.toml")):
            try:
                raw = tomllib.loads(path.read_text())
                desc = raw.get("description", "")
            except tomllib.TOMLDecodeError:
                raw, desc = {}, "(not valid TOML)"
            print(f"  {str(path.relative_to(EXPERIMENTS_DIR)):<28}{desc}")
            dataset = raw.get("dataset")
            refs = {raw.get("model"), *(a.get("model") for a in raw.get("arms", {}).values() if isinstance(a, dict)),
                    dataset.get("name") if isinstance(dataset, dict) else dataset}
            for ref in sorted(r for r in refs if isinstance(r, str) and ":" in r):
                print(f"  {'':<28}uses the plugin {ref} (imported from {path.parent}/ or installed packages)")
    if "techniques" in wanted:
        from dlbench import techniques

        print("techniques (switch, where it acts, what it does; then its values, default and models):")
        print(techniques.table())
    return 0


def cmd_ui(args) -> int:
    from dlbench.api import _tracking_uri
    from dlbench.tracking import serve_ui

    uri = _tracking_uri(args.tracking_uri)
    from dlbench.storage import redact

    print(f"MLflow UI over {redact(uri)} at http://127.0.0.1:{args.port} (Ctrl-C stops it); experiments:", file=sys.stderr)
    try:
        return serve_ui(uri, args.port)
    except KeyboardInterrupt:
        return 0


def cmd_dashboard(args) -> int:
    try:
        import optuna_dashboard
    except ImportError:
        print("dlbench dashboard: optuna-dashboard is not installed; install the extra with "
              "`.venv/bin/pip install -e '.[dashboard]'` (or `pip install optuna-dashboard`)", file=sys.stderr)
        return 2
    from dlbench.api import _storage_url
    from dlbench.storage import open_storage, redact

    url = _storage_url(args.storage)
    print(f"optuna-dashboard over {redact(url)} at http://127.0.0.1:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    try:
        optuna_dashboard.run_server(open_storage(url), host="127.0.0.1", port=args.port)
    except KeyboardInterrupt:
        pass
    return 0


def _show_spec_warnings() -> None:
    """Spec warnings as one line on stderr ("dlbench: warning: FILE: field `seeds`: ..."), not Python's format."""
    import warnings

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        from dlbench.spec import SpecWarning  # noqa: PLC0415

        if issubclass(category, SpecWarning):
            print(f"dlbench: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    _show_spec_warnings()
    args = _parser().parse_args(argv)
    from dlbench.spec import SpecError

    try:
        return {"run": cmd_run, "compare": cmd_compare, "list": cmd_list, "ui": cmd_ui,
                "dashboard": cmd_dashboard}[args.command](args)
    except SpecError as e:
        print(f"dlbench: invalid input: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ndlbench: interrupted; run the same command again to resume (finished trials are kept)",
              file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001
        from dlbench.data import DatasetUnavailable  # noqa: PLC0415
        from dlbench.study import RunError  # noqa: PLC0415

        if isinstance(e, DatasetUnavailable):  # fixed by the user, like a bad spec: the message says how
            print(f"dlbench: dataset unavailable: {e}", file=sys.stderr)
            return 2
        if isinstance(e, RunError):
            print(f"dlbench: {e}", file=sys.stderr)
            return 1
        # A traceback, with any credentials in URLs (an MLflow server's error names its URL) masked.
        import traceback  # noqa: PLC0415

        from dlbench.storage import redact  # noqa: PLC0415

        sys.stderr.write(redact("".join(traceback.format_exception(e))))
        return 1


if __name__ == "__main__":
    sys.exit(main())

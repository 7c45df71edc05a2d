"""Command line: `dlbench run | compare | list | ui`. Thin: parse, call one function, return an exit status.

Exit status: 0 success, 2 invalid input (bad spec, unknown name, bad flag) or a dataset that is not on this
machine and cannot be downloaded, 1 failure at run time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
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
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,compare,list,ui}")

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

    ui = sub.add_parser("ui", help="open the MLflow UI on 127.0.0.1 over this project's store",
                        description="Start the MLflow UI on 127.0.0.1 (Ctrl-C stops it).")
    ui.add_argument("--port", type=_positive, default=5000, help="port (default 5000)")
    ui.add_argument("--tracking-uri", default=None, help="tracking store (default sqlite:///mlruns/mlflow.db)")
    return p


def _storage(arg: str | None) -> str:
    return arg or os.environ.get("DLBENCH_STORAGE") or "studies/"


def _tracking(arg: str | None) -> str:
    from dlbench.tracking import default_uri  # noqa: PLC0415 - keeps `list` and `--help` free of mlflow

    return arg or default_uri()


def cmd_run(args) -> int:
    from dlbench import spaces

    overrides = dict(trials=args.trials, epochs=args.epochs, seeds=args.seeds,
                     arms=[a.strip() for a in args.arms.split(",") if a.strip()] if args.arms else None)
    exp = spaces.load(args.spec, args.set, **overrides)
    if args.quick:
        from dlbench.spec import with_overrides

        exp = with_overrides(exp, trials=args.trials or 2, seeds=args.seeds or 2, epochs=args.epochs or 2,
                             name=f"{exp.name}-quick")

    from dlbench import study
    from dlbench.spec import SpecError
    from dlbench.storage import redact

    placed: tuple[str, ...] = ()
    if args.gpus is not None:
        from dlbench import gpus

        if args.workers != 1:
            raise SpecError("command line", "--workers", "with --gpus the number of workers is GPUs x "
                            "--workers-per-gpu; use --workers-per-gpu instead")
        try:
            placed = tuple(gpus.select(args.gpus, gpus.detect()))
        except ValueError as e:
            raise SpecError("command line", "--gpus", str(e)) from None
    elif args.workers_per_gpu != 1:
        raise SpecError("command line", "--workers-per-gpu", "only applies with --gpus")
    settings = study.Settings(storage=_storage(args.storage), tracking_uri=_tracking(args.tracking_uri),
                              workers=args.workers, progress=False if args.no_progress else None, gpus=placed,
                              workers_per_gpu=args.workers_per_gpu,
                              checkpoints=args.checkpoints or os.environ.get("DLBENCH_CHECKPOINTS"))
    start = time.perf_counter()
    models_used = "+".join(sorted({exp.model_for(a) for a in exp.arms}))
    print(f"dlbench: {exp.name}: {len(exp.arms)} arms x ({exp.budget.trials} trials + {exp.seeds} seeds) x "
          f"{exp.budget.epochs} epochs on {exp.dataset.name}/{models_used}; storage {redact(settings.storage)}, "
          f"tracking {redact(settings.tracking_uri)}", file=sys.stderr, flush=True)
    study.run(exp, settings)
    from dlbench import compare
    from dlbench.tracking import ui_command

    try:
        print(compare.format_report(compare.report(exp, settings.storage, settings.tracking_uri)))
    except SpecError as e:  # nothing to compare: every trial or repeat failed
        print(f"dlbench: no comparison: {e.message}", file=sys.stderr)
    print(f"\nfinished in {time.perf_counter() - start:.0f} s. Compare the runs in the MLflow UI: "
          f"{redact(ui_command(settings.tracking_uri))}")
    return 0


def cmd_compare(args) -> int:
    from dlbench import compare

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in compare.FORMATS]
    if bad:
        print(f"dlbench compare: unknown format {bad[0]!r}; choose from {', '.join(compare.FORMATS)}",
              file=sys.stderr)
        return 2
    uri = _tracking(args.tracking_uri)
    exp = compare.resolve(args.spec_or_name, uri)
    report = compare.report(exp, _storage(args.storage), uri, write=not args.no_log)
    print("\n\n".join(compare.format_report(report, f) for f in formats))
    return 0


def cmd_list(args) -> int:
    wanted = [w.strip() for w in args.what.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in LISTS]
    if unknown:
        print(f"dlbench list: unknown kind {unknown[0]!r}; choose from {', '.join(LISTS)}", file=sys.stderr)
        return 2
    if "models" in wanted:
        from dlbench import models

        print("models:")
        for name in models.names():
            print(f"  {name:<18}{models.get(name).description}")
    if "datasets" in wanted:
        from dlbench import data

        print("datasets:")
        for name in data.names():
            print(f"  {name:<18}{data.get(name).description}")
    if "experiments" in wanted:
        import tomllib

        print(f"experiments ({EXPERIMENTS_DIR}/):")
        for path in sorted(EXPERIMENTS_DIR.glob("*.toml")):
            try:
                desc = tomllib.loads(path.read_text()).get("description", "")
            except tomllib.TOMLDecodeError:
                desc = "(not valid TOML)"
            print(f"  {path.name:<28}{desc}")
    if "techniques" in wanted:
        from dlbench import techniques

        print("techniques (switch, where it acts, what it does; then its values, default and models):")
        print(techniques.table())
    return 0


def cmd_ui(args) -> int:
    from dlbench.tracking import serve_ui

    uri = _tracking(args.tracking_uri)
    from dlbench.storage import redact

    print(f"MLflow UI over {redact(uri)} at http://127.0.0.1:{args.port} (Ctrl-C stops it); experiments:", file=sys.stderr)
    try:
        return serve_ui(uri, args.port)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    args = _parser().parse_args(argv)
    from dlbench.spec import SpecError

    try:
        return {"run": cmd_run, "compare": cmd_compare, "list": cmd_list, "ui": cmd_ui}[args.command](args)
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

"""Progress display: arm, trial i/N, epoch and best so far on a terminal; a line per finished stage otherwise."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile

from tqdm import tqdm


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where progress bars draw as widgets, through tqdm.auto)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


class Progress:
    """Feed it events; it draws a bar on a terminal or in a notebook, and stays quiet (a line per stage) when
    output is neither."""

    def __init__(self, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        notebook = in_notebook()
        self.enabled = (notebook or self.stream.isatty()) if enabled is None else enabled
        if notebook:
            from tqdm.auto import tqdm as bar_class  # noqa: PLC0415 - a widget when ipywidgets is installed
        else:
            bar_class = tqdm
        self._bar_class = bar_class
        self.bar: tqdm | None = None
        self.arm = ""
        self.stage = ""
        self.best: float | None = None
        self.epochs = 0

    def start(self, arm: str, stage: str, total: int, done: int, epochs: int) -> None:
        self.close()
        self.arm, self.stage, self.epochs = arm, stage, epochs
        if self.enabled:
            self.bar = self._bar_class(total=total, initial=done, desc=f"{arm} {stage}", file=self.stream, leave=True,
                            dynamic_ncols=True, unit=stage.rstrip("s") or "it")

    def epoch(self, item: str, epoch: int, logs: dict[str, float], metric: str) -> None:
        if self.bar is not None:
            post = f"{item} epoch {epoch + 1}/{self.epochs} {metric}={logs.get(metric, float('nan')):.4f}"
            if self.best is not None:
                post += f" best={self.best:.4f}"
            self.bar.set_postfix_str(post, refresh=True)

    def done(self, best: float | None) -> None:
        self.best = best if best is not None else self.best
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def note(self, text: str) -> None:
        """A line that shows whether or not output is a terminal."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)


def quiet_libraries() -> None:
    """Our progress and summary are the output; the libraries' INFO chatter is not (call at process start)."""
    # Level 3 also hides TensorFlow's C++ "NodeDef mentions attribute ..." lines printed at every fit.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # With a tracking server MLflow prints "View run ... at: URL" for every run it ends, one line per trial;
    # `dlbench run` prints the link to the experiment once, at the end.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # e.g. an init_from source's download
    if "optuna" in sys.modules:  # optuna resets its logger's level when it is imported
        sys.modules["optuna"].logging.set_verbosity(logging.WARNING)
    for name, level in (("optuna", logging.WARNING), ("mlflow", logging.WARNING), ("alembic", logging.WARNING),
                        ("tensorflow", logging.ERROR)):
        logging.getLogger(name).setLevel(level)


# What TensorFlow's C++ runtime prints to stderr when it loads and starts, whatever TF_CPP_MIN_LOG_LEVEL says
# (since 2.19 these lines come before absl logging is initialised): facts about the build and the machine, nothing a
# user acts on. Everything else on stderr passes through.
_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|cudart_stub\.cc|"
    r"Could not find cuda drivers|cuda_platform\.cc.*cuInit|cpu_feature_guard\.cc|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags|"
    r"Unable to register cu(FFT|DNN|BLAS) factory|computation_placer\.cc|"
    r"TF-TRT Warning: Could not find TensorRT|Attempting to register factory for plugin")


@contextlib.contextmanager
def quiet_stderr():
    """Hold what is written to file descriptor 2 (C++ libraries included) inside the block, then write back all
    but the known start-up chatter (`_NOISE`)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (some embedded interpreters): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [ln for ln in held.read().decode(errors="replace").splitlines(keepends=True)
                    if not _NOISE.search(ln)]
            if kept:
                os.write(2, "".join(kept).encode())

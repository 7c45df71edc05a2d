"""Progress display: arm, trial i/N, epoch and best so far on a terminal; a line per finished stage otherwise."""

from __future__ import annotations

import logging
import os
import sys

from tqdm import tqdm


class Progress:
    """Feed it events; it draws a bar on a terminal and stays quiet (a line per stage) when output is not one."""

    def __init__(self, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.bar: tqdm | None = None
        self.arm = ""
        self.stage = ""
        self.best: float | None = None
        self.epochs = 0

    def start(self, arm: str, stage: str, total: int, done: int, epochs: int) -> None:
        self.close()
        self.arm, self.stage, self.epochs = arm, stage, epochs
        if self.enabled:
            self.bar = tqdm(total=total, initial=done, desc=f"{arm} {stage}", file=self.stream, leave=True,
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
    if "optuna" in sys.modules:  # optuna resets its logger's level when it is imported
        sys.modules["optuna"].logging.set_verbosity(logging.WARNING)
    for name, level in (("optuna", logging.WARNING), ("mlflow", logging.WARNING), ("alembic", logging.WARNING),
                        ("tensorflow", logging.ERROR)):
        logging.getLogger(name).setLevel(level)

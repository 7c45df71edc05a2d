"""Checkpoints: a unit's training state saved every `checkpoint_every` epochs, so a killed run resumes.

One file per unit, keyed by its MLflow run id: `<root>/<experiment>/<spec hash>/<run id>.npz`, holding the
weights, the optimizer's variables, the best weights so far and a JSON header (epoch, best epoch and value, the
per-epoch history, the spec hash). Files are written to a temporary name and renamed, so a reader sees a whole
checkpoint or the previous one; a file that still cannot be read (a truncated copy, another format) is reported as
`Unreadable` and the unit restarts from epoch 0. A checkpoint written under another spec hash is never loaded.
Across machines, the root must be a folder every worker sees (a shared file system).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from dlbench.train import TrainState

FORMAT = 1


class Unreadable(RuntimeError):
    """The checkpoint exists but cannot be used; the message says why."""


def default_root(storage: str) -> Path:
    """`checkpoints/` beside the Optuna storage folder (the project root for the default `studies/`), else in the
    working directory; DLBENCH_CHECKPOINTS overrides."""
    if os.environ.get("DLBENCH_CHECKPOINTS"):
        return Path(os.environ["DLBENCH_CHECKPOINTS"])
    if "://" in storage:
        return Path("checkpoints")
    folder = Path(storage)
    if folder.suffix in (".log", ".journal"):
        folder = folder.parent
    return folder.resolve().parent / "checkpoints"


class Store:
    """The checkpoints of one experiment version."""

    def __init__(self, root: str | Path, experiment: str, spec_hash: str):
        self.folder = Path(root) / experiment / spec_hash
        self.spec_hash = spec_hash

    def path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.npz"

    def save(self, run_id: str, state: TrainState) -> None:
        arrays = {f"w{i}": w for i, w in enumerate(state.weights)}
        arrays.update({f"b{i}": w for i, w in enumerate(state.best_weights or [])})
        arrays.update({f"o{i}": v for i, v in enumerate(state.optimizer)})
        header = {"format": FORMAT, "spec_hash": self.spec_hash, "epoch": state.epoch, "best_epoch": state.best_epoch,
                  "best_value": state.best_value, "history": state.history, "weights": len(state.weights),
                  "best_weights": len(state.best_weights or []), "optimizer": len(state.optimizer)}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(run_id)
        scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(scratch, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(scratch, target)

    def load(self, run_id: str) -> TrainState | None:
        """The unit's last state; None when it has no checkpoint.

        Raises:
            Unreadable: the file is truncated or corrupt, or was written by another version of the experiment.
        """
        target = self.path(run_id)
        if not target.exists():
            return None
        try:
            with np.load(io.BytesIO(target.read_bytes()), allow_pickle=False) as z:
                header = json.loads(z["header"].tobytes().decode())
                if header.get("format") != FORMAT:
                    raise Unreadable(f"checkpoint format {header.get('format')!r}, expected {FORMAT}")
                if header.get("spec_hash") != self.spec_hash:
                    raise Unreadable(f"written by spec hash {header.get('spec_hash')}, not {self.spec_hash}")
                weights = [z[f"w{i}"] for i in range(header["weights"])]
                best = [z[f"b{i}"] for i in range(header["best_weights"])] or None
                optimizer = [z[f"o{i}"] for i in range(header["optimizer"])]
        except Unreadable:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as e:
            raise Unreadable(f"{type(e).__name__}: {e}") from None
        return TrainState(epoch=int(header["epoch"]), history={k: list(v) for k, v in header["history"].items()},
                          best_epoch=int(header["best_epoch"]), best_value=float(header["best_value"]),
                          weights=weights, best_weights=best, optimizer=optimizer)

    def delete(self, run_id: str) -> None:
        self.path(run_id).unlink(missing_ok=True)

"""GPU placement: the GPUs this machine has (asked of nvidia-smi, no framework imported) and each worker's share.

`dlbench run SPEC --gpus all|0,1,3 [--workers-per-gpu K]` starts K worker processes per listed GPU. Each gets
`CUDA_VISIBLE_DEVICES` set to its GPU before it imports any framework, TensorFlow's memory growth on and JAX's
preallocation off, so that K workers can share one GPU.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Iterator, Mapping

# Tests only: a fake device list "0:Name A;1:Name B" in place of nvidia-smi's answer ("" = no GPUs).
FAKE_ENV = "DLBENCH_FAKE_GPUS"


def detect() -> list[tuple[str, str]]:
    """(index, name) of every NVIDIA GPU this machine shows; [] without nvidia-smi or a driver."""
    fake = os.environ.get(FAKE_ENV)
    if fake is not None:
        return [tuple(part.split(":", 1)) for part in fake.split(";") if part.strip()]  # type: ignore[misc]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [(i.strip(), n.strip()) for i, n in (line.split(",", 1) for line in out.stdout.splitlines() if "," in line)]


def select(wanted: str, available: list[tuple[str, str]]) -> list[str]:
    """The GPU indices `--gpus` names: "all", or a comma-separated list such as "0,1,3".

    Raises:
        ValueError: the machine has no GPU, or a named one is missing or named twice; the message lists the GPUs
            this machine shows.
    """
    seen = ", ".join(f"{i} ({n})" for i, n in available) or "none"
    if not available:
        raise ValueError("this machine shows no NVIDIA GPU (nvidia-smi found none); run without --gpus to train on "
                         "the CPU")
    if wanted.strip() == "all":
        return [i for i, _ in available]
    chosen = [w.strip() for w in wanted.split(",") if w.strip()]
    known = {i for i, _ in available}
    for w in chosen:
        if w not in known:
            raise ValueError(f"no GPU {w!r} on this machine; it shows: {seen}. Give `all` or indices from that list")
    if not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"give `all` or distinct GPU indices such as 0,1; got {wanted!r}. This machine shows: {seen}")
    return chosen


def worker_environments(gpus: list[str], per_gpu: int) -> list[dict[str, str]]:
    """One environment per worker: `per_gpu` workers on each GPU, in GPU order."""
    return [{"CUDA_VISIBLE_DEVICES": g, "TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
            for g in gpus for _ in range(per_gpu)]


@contextlib.contextmanager
def environment(env: Mapping[str, str] | None) -> Iterator[None]:
    """Set environment variables for a moment (a spawned worker inherits them when it starts)."""
    before = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

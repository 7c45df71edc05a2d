"""dlbench: tuned, tracked and statistically compared deep-learning ablations.

The public API (imported on first use, so `import dlbench` stays light):
    load_spec, run, compare, Report                  dlbench/api.py
    register_model, register_dataset                 dlbench/plugins.py
    DatasetInfo, Split, Experiment, SpecError        what plugins and specs are made of
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "load_spec": "dlbench.api", "run": "dlbench.api", "compare": "dlbench.api", "Report": "dlbench.api",
    "register_model": "dlbench.plugins", "register_dataset": "dlbench.plugins",
    "DatasetInfo": "dlbench.data", "Split": "dlbench.data",
    "Experiment": "dlbench.spec", "SpecError": "dlbench.spec",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'dlbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))

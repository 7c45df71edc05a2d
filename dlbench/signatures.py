"""What dlbench reads off a plugin function: its hyperparameters (keyword parameters with defaults and type
hints), where it is defined, and the digest of its source that the spec hash covers."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import typing
from pathlib import Path
from typing import Any, Callable


def digest(fn: Callable) -> str:
    """sha256 (12 hex digits) of the source file that defines `fn`, else of its own source, else of its bytecode."""
    try:
        path = inspect.getsourcefile(fn)
        if path and Path(path).is_file():
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except TypeError:
        pass
    try:
        text = inspect.getsource(fn).encode()
    except (OSError, TypeError):  # no source to read (code made by exec): its bytecode, constants and defaults
        code = getattr(fn, "__code__", None)
        text = (code.co_code + repr((code.co_consts, fn.__defaults__, fn.__kwdefaults__)).encode()) if code \
            else repr(fn).encode()
    return hashlib.sha256(text).hexdigest()[:12]


def where(fn: Callable) -> str:
    """"module:qualname (path relative to the working folder)" of a function."""
    try:
        path = inspect.getsourcefile(fn)
    except TypeError:
        path = None
    text = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', '?')}"
    if path:
        try:
            path = str(Path(path).resolve().relative_to(Path.cwd()))
        except ValueError:
            pass
        text += f" ({path})"
    return text


def signature_dataclass(fn: Callable, kind: str, name: str, skip_first: bool) -> type:
    """A frozen dataclass of `fn`'s keyword parameters: their type hints (else the default's type) and defaults."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - hints that do not resolve: fall back to the defaults' types
        hints = {}
    fields = []
    params = list(inspect.signature(fn).parameters.values())
    if skip_first:
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            raise TypeError(f"{kind} plugin {name!r}: {where(fn)} must take the dataset info as its first "
                            "argument: def build(info, width: int = 64, ...)")
        params = params[1:]
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise TypeError(f"{kind} plugin {name!r}: parameter {p.name!r} of {where(fn)} has no default; every "
                            "hyperparameter needs one (it is what a spec that does not set it gets)")
        annotation = hints.get(p.name, type(p.default) if p.default is not None else Any)
        fields.append((p.name, annotation, dataclasses.field(default=p.default)))
    cls = dataclasses.make_dataclass(f"{name}_hparams".replace(".", "_").replace(":", "_"), fields, frozen=True)
    cls.__module__ = __name__
    return cls

"""Typed parameter fields: the annotations of the HParams dataclasses, what each accepts in words, and checking a
spec value against one."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

import pydantic

from dlbench.spec import SpecError


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


@functools.lru_cache(maxsize=None)
def _adapter(annotation: Any) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(annotation, config=pydantic.ConfigDict(strict=True))


_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _bounds(meta: Any) -> list[str]:
    """'>= 0', '< 1', ... from a pydantic Field's constraints (annotated_types Ge, Lt, ...)."""
    out = []
    for constraint in getattr(meta, "metadata", [meta]):
        for key, sign in _BOUNDS.items():
            if hasattr(constraint, key):
                out.append(f"{sign} {getattr(constraint, key):g}")
    return out


def allowed_values(annotation: Any) -> str:
    """What a parameter of this type accepts, in words: "float (>= 0, < 1)", "one of 'a', 'b'", ..."""
    args = typing.get_args(annotation)
    base = typing.get_origin(annotation)
    if base is typing.Annotated:
        inner, *meta = args
        bounds = ", ".join(b for m in meta for b in _bounds(m))
        return f"{getattr(inner, '__name__', inner)} ({bounds})" if bounds else allowed_values(inner)
    if annotation is type(None):
        return "absent (unset)"
    if base is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if base in (typing.Union, types.UnionType):
        return " or ".join(allowed_values(a) for a in args)
    if annotation is bool:
        return "true or false"
    return getattr(annotation, "__name__", str(annotation))


def check_value(path, field: str, annotation: Any, value: Any) -> None:
    """Raise a SpecError naming `field` of the spec at `path` unless `value` fits `annotation`."""
    if _is_float(annotation) and _is_int(value):
        value = float(value)  # TOML `1` where a float is expected
    try:
        _adapter(annotation).validate_python(value)
    except pydantic.ValidationError:
        raise SpecError(path, field, f"{value!r} is not allowed; expected {allowed_values(annotation)}") from None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_float(annotation: Any) -> bool:
    return base_type(annotation) is float


def base_type(annotation: Any) -> Any:
    """The type under an Annotated[...] (int of a constrained int), else the annotation itself."""
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation

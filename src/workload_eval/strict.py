"""Numbers are numbers: a boolean is never accepted where a count, a seed or a rate goes.

pydantic's lax mode turns ``true`` into ``1`` for an ``int`` field and ``1.0`` for a
``float`` one, so a spec with ``seed: true`` silently ran seed 1. Strict mode would also
refuse ``1000.0`` for an int and ``"0.5"`` from a command line, so instead every model at
a boundary derives from :class:`NoBoolNumbers`, which refuses a boolean (also inside a
list) for a field whose type is numeric and does not itself admit a boolean.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, model_validator

_SEQUENCES = (list, tuple, set, frozenset)


def _kinds(tp: Any) -> tuple[bool, bool]:
    """(admits a number, admits a boolean) for a field's annotation, unions unwrapped."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _kinds(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        parts = [_kinds(a) for a in typing.get_args(tp)]
        return any(n for n, _ in parts), any(b for _, b in parts)
    if tp is bool:
        return False, True
    if tp in (int, float):
        return True, False
    if tp is typing.Any or tp is object:
        return False, True
    return False, False


def _element(tp: Any) -> Any:
    """The element type of a list/tuple/set annotation (inside unions), else None."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _element(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        found = [e for a in typing.get_args(tp) if (e := _element(a)) is not None]
        return found[0] if found else None
    if origin in _SEQUENCES:
        args = typing.get_args(tp)
        return args[0] if args else None
    return None


def _no_bool(tp: Any) -> tuple[bool, bool]:
    """(the field refuses a boolean, its list elements refuse one). A list of numbers
    refuses a lone boolean too (specs accept a scalar for a one-element list)."""
    number, boolean = _kinds(tp)
    elem = _element(tp)
    elem_number, elem_boolean = _kinds(elem) if elem is not None else (False, True)
    items = elem_number and not elem_boolean
    return (number or items) and not boolean, items


_RULES: dict[tuple[type, str], tuple[bool, bool]] = {}  # per (model, field): its annotation's


class Boolean:
    """A boolean given where a number goes: no number validator accepts it, so the field's
    own error (with its location) names the field, e.g. ``seeds.0: Input should be a
    valid integer (got true)``."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __repr__(self) -> str:
        return str(self.value).lower()


class NoBoolNumbers(BaseModel):
    """Base of boundary models: ``true``/``false`` is not a number (see the module doc).

    Booleans in numeric fields are swapped for :class:`Boolean` before validation (a field
    validator would also run on the discriminator of a tagged union, which pydantic
    forbids), so the field's normal validation refuses them where they are."""

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: object) -> object:
        if not isinstance(data, Mapping):
            return data
        swapped = None
        for key, value in data.items():
            if not isinstance(value, (bool, *_SEQUENCES)) or not isinstance(key, str):
                continue
            refuse, refuse_items = _rule(cls, key)
            if refuse and isinstance(value, bool):
                new: object = Boolean(value)
            elif refuse_items and isinstance(value, _SEQUENCES):
                if not any(isinstance(v, bool) for v in value):
                    continue
                new = [Boolean(v) if isinstance(v, bool) else v for v in value]
            else:
                continue
            swapped = swapped if swapped is not None else dict(data)
            swapped[key] = new
        return data if swapped is None else swapped


def _rule(cls: type[BaseModel], key: str) -> tuple[bool, bool]:
    rule = _RULES.get((cls, key))
    if rule is None:
        field = cls.model_fields.get(key)
        if field is None:  # an alias
            field = next(
                (f for f in cls.model_fields.values() if key in (f.alias, f.validation_alias)),
                None,
            )
        rule = _RULES[cls, key] = _no_bool(field.annotation) if field else (False, False)
    return rule


__all__ = ["Boolean", "NoBoolNumbers"]

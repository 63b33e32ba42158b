"""`@record`: the part of `dataclasses` pgmi uses, without its start-up cost.

Why not `dataclasses` itself: importing it (it pulls in inspect, ast, dis and tokenize) and letting
it generate every class's methods with exec() took ~19 ms of a ~100 ms empty deploy, 8 ms for the
import and ~0.7 ms for each of the 17 classes on that path (bench/empty.py; bench/ANALYSIS.md has
the figures). A record is written like a dataclass:

    @record(frozen=True)
    class Backoff:
        first: float
        factor: float = 2.0
        seen: list[str] = field(default_factory=list, repr=False)

and gets what a dataclass would: `__init__` (positional or keyword arguments, in field order, with
defaults and default factories, then `__post_init__` if the class has one), `__repr__`, `__eq__`
over the compared fields, immutability and `__hash__` for frozen records; `replace()` and `fields()`
work as their dataclasses namesakes. Fields are the class's own annotations after its record bases'
ones; `ClassVar` annotations are not fields; a list, dict or set default is refused (every
instance would share it: use a default factory). A method the class defines itself is kept.

The methods are shared functions that read the class's field table instead of generated code, so a
class costs microseconds to create; an instance costs a little more than a dataclass instance (a loop
over the table). The classes built once per file or statement define their own `__init__`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")
_MISSING: Any = object()


class FrozenInstanceError(AttributeError):
    """Assignment to an attribute of a frozen record."""


class Field:
    """One field of a record: its name, default (or default factory), and whether repr/eq use it."""

    __slots__ = ("compare", "default", "default_factory", "name", "repr")

    def __init__(self, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None,
                 repr: bool = True, compare: bool = True) -> None:
        if default is not _MISSING and default_factory is not None:
            raise ValueError("a field cannot have both a default and a default_factory")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.compare = compare

    @property
    def required(self) -> bool:
        return self.default is _MISSING and self.default_factory is None

    def __repr__(self) -> str:
        return f"Field(name={self.name!r})"


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None, repr: bool = True,
          compare: bool = True) -> Any:
    """A field with options, as the class attribute's value (like `dataclasses.field`)."""
    return Field(default, default_factory, repr, compare)


def fields(obj_or_class: Any) -> tuple[Field, ...]:
    """The record's fields, in order."""
    cls = obj_or_class if isinstance(obj_or_class, type) else type(obj_or_class)
    try:
        return cls.__record_fields__
    except AttributeError:
        raise TypeError(f"{cls.__name__} is not a record") from None


def replace(obj: T, /, **changes: Any) -> T:
    """A new record like `obj` with `changes` applied (its __init__ and __post_init__ run again)."""
    for f in type(obj).__record_fields__:
        if f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return type(obj)(**changes)


def record(cls: type[T] | None = None, /, *, frozen: bool = False, eq: bool = True) -> Any:
    """Class decorator: make `cls` a record (`@record` or `@record(frozen=True, eq=False)`)."""

    def wrap(cls: type[T]) -> type[T]:
        return _build(cls, frozen=frozen, eq=eq)

    return wrap if cls is None else wrap(cls)


# ------------------------------------------------------------------------------------ the methods

def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    table = type(self).__record_fields__
    name = type(self).__name__
    if len(args) > len(table):
        raise TypeError(f"{name}() takes {len(table)} positional arguments but {len(args)} were given")
    setter = object.__setattr__
    for f, value in zip(table, args):
        if f.name in kwargs:
            raise TypeError(f"{name}() got multiple values for argument '{f.name}'")
        setter(self, f.name, value)
    for f in table[len(args):]:
        value = kwargs.pop(f.name, _MISSING)
        if value is _MISSING:
            if f.default is not _MISSING:
                value = f.default
            elif f.default_factory is not None:
                value = f.default_factory()
            else:
                raise TypeError(f"{name}() missing required argument: '{f.name}'")
        setter(self, f.name, value)
    if kwargs:
        raise TypeError(f"{name}() got an unexpected keyword argument '{next(iter(kwargs))}'")
    post_init = getattr(self, "__post_init__", None)
    if post_init is not None:
        post_init()


def _repr(self: Any) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in type(self).__record_fields__ if f.repr)
    return f"{type(self).__qualname__}({shown})"


def _key(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, f.name) for f in type(self).__record_fields__ if f.compare)


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _key(self) == _key(other)


def _hash(self: Any) -> int:
    return hash(_key(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field '{name}'")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field '{name}'")


# ------------------------------------------------------------------------------------ the class

def _build(cls: type[T], *, frozen: bool, eq: bool) -> type[T]:
    table: dict[str, Field] = {}
    for base in cls.__mro__[-1:0:-1]:  # record bases first, the nearest one last
        table.update((f.name, f) for f in base.__dict__.get("__record_fields__", ()))
    for name, annotation in _own_annotations(cls).items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, (list, dict, set)):  # one object shared by every instance: refused, as dataclasses does
            raise TypeError(f"{cls.__name__}.{name}: mutable default {type(value).__name__}; use field(default_factory=...)")
        f = value if isinstance(value, Field) else Field(default=value)
        f.name = name
        if isinstance(value, Field):  # the class attribute becomes the plain default, as in dataclasses
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        table[name] = f
    seen_default = ""
    for f in table.values():
        if not f.required:
            seen_default = f.name
        elif seen_default:
            raise TypeError(f"{cls.__name__}: required field '{f.name}' follows field '{seen_default}' with a default")
    cls.__record_fields__ = tuple(table.values())  # type: ignore[attr-defined]
    own = cls.__dict__
    methods: dict[str, Any] = {"__init__": _init, "__repr__": _repr}
    if eq:
        methods["__eq__"] = _eq
        if "__hash__" not in own or own["__hash__"] is None:  # a class body with __eq__ sets __hash__ = None
            methods["__hash__"] = _hash if frozen else None
    if frozen:
        methods["__setattr__"] = _frozen_setattr
        methods["__delattr__"] = _frozen_delattr
    for name, method in methods.items():
        if name == "__hash__" or name not in own:
            setattr(cls, name, method)
    return cls


def _own_annotations(cls: type) -> dict[str, Any]:
    """The annotations written in `cls`'s own body (not its bases')."""
    if sys.version_info >= (3, 10):  # per class since 3.10, and computed on demand from 3.14 on
        return cls.__annotations__
    return cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - 3.9: an attribute lookup would find a base's


def _is_classvar(annotation: Any) -> bool:
    """`ClassVar[...]` in a string annotation (`from __future__ import annotations`) or a real one."""
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    typing = sys.modules.get("typing")  # a real ClassVar annotation was written by a module that imported typing
    classvar = typing.ClassVar if typing is not None else None
    return classvar is not None and (annotation is classvar or getattr(annotation, "__origin__", None) is classvar)

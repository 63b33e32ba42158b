"""pgmilib.records: the dataclass subset pgmi's classes use, held against `dataclasses` itself."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgmilib.records import FrozenInstanceError, field, fields, record, replace


@record
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    note: str = field(default="", repr=False, compare=False)
    kind: ClassVar[str] = "point"


@record(frozen=True)
class Frozen:
    a: int
    b: str = "b"


def test_init_positional_keyword_defaults_and_factories():
    p = Point(1, tags=["t"])
    assert (p.x, p.y, p.tags, p.note) == (1, 0, ["t"], "")
    assert Point(1).tags is not Point(1).tags  # a factory runs per instance
    assert Point.y == 0 and not hasattr(Point, "tags")  # plain default stays a class attribute, a factory does not
    assert [f.name for f in fields(Point)] == ["x", "y", "tags", "note"]  # ClassVar is not a field
    assert fields(p) == fields(Point)


def test_real_classvar_annotations_are_not_fields():
    """A module without the future import gives evaluated annotations: `ClassVar[int]` and a bare
    `ClassVar` are read from typing (loaded by that module), an ordinary class is a field."""
    cls = type("Real", (), {"__annotations__": {"a": int, "b": ClassVar[int], "c": ClassVar, "d": str},
                            "b": 1, "c": 2, "d": "d"})
    assert [f.name for f in fields(record(cls))] == ["a", "d"]


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((), {}, "missing required argument: 'x'"),
    ((1, 2, [], "", 5), {}, "takes 4 positional arguments but 5 were given"),
    ((1,), {"x": 2}, "got multiple values for argument 'x'"),
    ((1,), {"z": 2}, "got an unexpected keyword argument 'z'"),
])
def test_init_refuses_what_a_dataclass_refuses(args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)


def test_repr_eq_and_hash():
    assert repr(Point(1, 2, ["a"], note="hidden")) == "Point(x=1, y=2, tags=['a'])"
    assert Point(1, note="one") == Point(1, note="two")  # compare=False
    assert Point(1) != Point(2)
    assert Point(1) != Frozen(1)
    assert Point.__hash__ is None  # mutable with eq: unhashable, like a dataclass
    assert hash(Frozen(1)) == hash(Frozen(1)) and len({Frozen(1), Frozen(1), Frozen(2)}) == 2


def test_frozen_refuses_assignment_and_deletion():
    f = Frozen(1)
    with pytest.raises(FrozenInstanceError):
        f.a = 2
    with pytest.raises(AttributeError):
        del f.b
    assert f.a == 1


def test_replace_runs_init_again():
    f = Frozen(1)
    g = replace(f, b="c")
    assert (g.a, g.b, f.b) == (1, "c", "b")
    with pytest.raises(TypeError, match="unexpected keyword argument 'zz'"):
        replace(f, zz=1)
    with pytest.raises(TypeError, match="not a record"):
        fields(object())


def test_inheritance_post_init_and_own_methods():
    @record
    class Base:
        a: int

    @record
    class Child(Base):
        b: int = 2

        def __post_init__(self) -> None:
            self.total = self.a + self.b

        def __repr__(self) -> str:
            return "mine"

    c = Child(1)
    assert (c.a, c.b, c.total, repr(c)) == (1, 2, 3, "mine")
    assert [f.name for f in fields(Child)] == ["a", "b"]


def test_definition_errors():
    with pytest.raises(TypeError, match="required field 'b' follows field 'a'"):
        @record
        class Bad:
            a: int = 1
            b: int
    with pytest.raises(ValueError, match="both a default and a default_factory"):
        field(default=1, default_factory=list)
    with pytest.raises(TypeError, match="Shared.items: mutable default list; use field"):
        @record
        class Shared:
            items: list[int] = []  # noqa: RUF012 - the mistake under test


@given(st.lists(st.tuples(st.booleans(), st.integers()), min_size=1, max_size=6, unique_by=lambda t: t[1]),
       st.integers(), st.booleans())
def test_same_behaviour_as_dataclasses(spec, other, frozen):
    """Random field lists: the record and the equivalent dataclass agree on repr, eq, hash and replace."""
    spec = sorted(spec, key=lambda t: t[0])  # required fields first, as both demand
    names = [f"f{i}" for i in range(len(spec))]
    namespace = {"__annotations__": {n: "int" for n in names}}
    namespace.update({n: value for n, (has_default, value) in zip(names, spec) if has_default})
    r = record(type("R", (), dict(namespace)), frozen=frozen)
    d = dataclasses.dataclass(type("R", (), dict(namespace)), frozen=frozen)
    required = [value for has_default, value in spec if not has_default]
    a, b = r(*required), d(*required)
    assert repr(a) == repr(b)
    assert (a == r(*required)) == (b == d(*required)) is True
    changed_r, changed_d = replace(a, **{names[0]: other}), dataclasses.replace(b, **{names[0]: other})
    assert repr(changed_r) == repr(changed_d)
    assert (changed_r == a) == (changed_d == b)
    if frozen:
        assert hash(a) == hash(r(*required))
    else:
        assert type(a).__hash__ is None and type(b).__hash__ is None

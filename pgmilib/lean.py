"""Three standard-library modules imported without a module they would load for nothing.

Each is imported with a small stand-in for one of its own imports, in `sys.modules` only while
it is imported, so that a later import of the real module (anywhere) gets the real one:

* `uuid` (the driver's type tables key on `uuid.UUID`): before Python 3.13, on Linux and the
  other Unixes, it imports `platform` only to call `platform.system()` once, for its AIX and
  Linux flags. `platform` compiles regular expressions at import, ~1.5 ms of every deploy;
  `os.uname().sysname` is the value `platform.system()` gives on those systems.
* `argparse`: it binds `gettext.gettext` and `ngettext` as its message translators. Each call
  then looks for a `messages` catalog of the interpreter's own domain, importing `locale` on the
  first (~1.5 ms with gettext). pgmi speaks English only, and no interpreter ships that catalog,
  so argparse's messages are what they were; the stand-ins return them as they are.
* `pathlib`: before Python 3.13 it imports `urllib.parse` at import, for `Path.as_uri()` alone,
  which pgmi never calls. `urllib.parse` builds its named tuples and result classes at import:
  ~1.8 ms of every start-up, before the connection is opened (its `ipaddress`, from 3.11 on,
  the driver imports anyway). The stand-in's `quote_from_bytes` imports the real module on its
  first call, so `as_uri()` still works.

When the module is already imported (an API caller, the test runner), nothing changes.
"""

from __future__ import annotations

import os
import sys


def _import_with_stand_in(name: str, stand_in_name: str, **attributes: object) -> None:
    if stand_in_name in sys.modules:  # the real one is loaded already: nothing to save
        __import__(name)
        return
    if name in sys.modules:
        return
    stand_in = type(sys)(stand_in_name)
    stand_in.__dict__.update(attributes)
    sys.modules[stand_in_name] = stand_in
    try:
        __import__(name)
    finally:
        if sys.modules.get(stand_in_name) is stand_in:
            del sys.modules[stand_in_name]


def _untranslated_plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def import_uuid() -> None:
    """Import `uuid` without `platform` (see the module docstring)."""
    if not hasattr(os, "uname"):  # Windows: uuid does not import platform there
        __import__("uuid")
        return
    _import_with_stand_in("uuid", "platform", system=lambda: os.uname().sysname)


def _quote_from_bytes(bs: bytes, safe: str = "/") -> str:
    from urllib.parse import quote_from_bytes

    return quote_from_bytes(bs, safe)


def import_pathlib() -> None:
    """Import `pathlib` without `urllib.parse` (see the module docstring)."""
    _import_with_stand_in("pathlib", "urllib.parse", quote_from_bytes=_quote_from_bytes)


def import_argparse() -> None:
    """Import `argparse` without `gettext` and `locale` (see the module docstring)."""
    _import_with_stand_in("argparse", "gettext", gettext=str, ngettext=_untranslated_plural)

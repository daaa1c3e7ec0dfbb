"""Package names that load on first use (PEP 562), for the packages' ``__init__`` files.

Importing a package then costs nothing; each name imports its module when first asked for and
is a plain attribute from then on. Type checkers read the package's ``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing alone costs a few ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def lazy_names(package: dict[str, Any], names: dict[str, str]
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the package whose ``globals()`` is ``package``:
    ``names`` maps each public name to the module that defines it."""
    where = package["__name__"]

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {where!r} has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(module), name)
        package[name] = value  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(package) | set(package["__all__"]))

    return __getattr__, __dir__

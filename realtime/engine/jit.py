"""`njit` for the engine's kernels: Numba's, or the same kernels compiled ahead of time.

Every kernel module takes `njit` from here, and `@njit(SIGNATURES, cache=True, nogil=True)` is Numba's:
the kernel is compiled (or loaded from Numba's cache) at import, and recorded in `KERNELS`, the list that
realtime.engine.compiled builds its extension module from. A process that calls `use_compiled` before it
imports the first kernel module gets, instead, each kernel's function from that module (a helper without
signatures, inlined into the kernels and never called from Python, stays a Python function), and never
imports numba. The compiled functions do not check their arguments' types as Numba does: they are for
the engine's own calls, whose types Numba checks in every other process.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, NamedTuple

ArgKind = tuple[str, int] | None
"""An argument of a compiled signature: an array's (numpy dtype string, ndim), or None for a scalar."""


class Kernel(NamedTuple):
    """A kernel compiled by Numba: `name` (module.qualname), its signatures, and the Numba dispatcher."""

    name: str
    signatures: tuple[str, ...]
    dispatcher: Any


class Export(NamedTuple):
    """One signature of a kernel in the compiled module: its symbol and its arguments' kinds."""

    symbol: str
    arguments: tuple[ArgKind, ...]


KERNELS: list[Kernel] = []
"""Every kernel with signatures that Numba compiled in this process, in import order."""
_compiled: tuple[ModuleType, dict[str, list[Export]]] | None = None


def use_compiled(module: ModuleType, exports: dict[str, list[Export]]) -> None:
    """Take every kernel imported from now on from `module` (`exports`: kernel name -> its signatures
    there, in the order of its `njit`); only before Numba has compiled a kernel in this process."""
    global _compiled
    if KERNELS:
        raise RuntimeError("the engine's kernels are Numba's in this process already")
    _compiled = (module, exports)


def njit(*args: Any, **options: Any) -> Any:
    """numba.njit, with the same arguments; see the module docstring."""
    signatures = None if not args or callable(args[0]) else args[0]
    if _compiled is not None:
        return _from_compiled if signatures is not None else (args[0] if args else (lambda func: func))
    import numba

    if signatures is None:
        return numba.njit(*args, **options)
    jit = numba.njit(*args, **options)

    def compile_and_record(func: Callable) -> Any:
        dispatcher = jit(func)
        listed = tuple(signatures) if isinstance(signatures, (list, tuple)) else (signatures,)
        KERNELS.append(Kernel(f"{func.__module__}.{func.__qualname__}", listed, dispatcher))
        return dispatcher

    return compile_and_record


def _from_compiled(func: Callable) -> Callable:
    """The compiled function of kernel `func`; with several signatures, one that picks by the arrays'
    dtypes and dimensions, as Numba's dispatcher does."""
    module, exports = _compiled
    name = f"{func.__module__}.{func.__qualname__}"
    if name not in exports:
        raise RuntimeError(f"the compiled kernels lack {name}: their build is not of these sources")
    functions = [(getattr(module, export.symbol), export.arguments) for export in exports[name]]
    if len(functions) == 1:
        return functions[0][0]

    def by_signature(*call_args: Any) -> Any:
        for function, kinds in functions:
            if all(kind is None or (getattr(arg, "dtype", None) is not None and arg.dtype.str == kind[0]
                                    and arg.ndim == kind[1]) for arg, kind in zip(call_args, kinds)):
                return function(*call_args)
        raise TypeError(f"no compiled signature of {name} matches its arguments")

    by_signature.__name__ = func.__name__
    return by_signature

"""What the `gapfill` process does for a quick start.

`use_compiled_kernels`: `restore` (one file) and `info` take the engine's kernels compiled ahead of time
(realtime.engine.compiled; the first run starts their build in the background), so that they import no
Numba at all; until they are built, or where they cannot be, they use Numba's, as every other command does.

`skip_numba_blas_probe`, before any command runs: Numba, while it initialises (the engine's first
kernel), imports scipy.linalg only to see whether BLAS is there for `np.dot`-like code; with SciPy
installed that costs about as much as importing numpy, and the engine's kernels use no BLAS. The skip
makes that one probe find nothing: Numba then uses its own loop for the inner products that would have
used BLAS, and imports scipy.linalg when a kernel that needs it is compiled, as it always does. Nothing
else changes: every import of scipy.linalg, before or after the probe, works.

Only the command's own process does either (`realtime.cli.main.main` with the process's arguments),
never a program that imports gapfill.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

_PROBED = ("scipy.linalg", "scipy.linalg.cython_blas")  # the package is what costs the time
_PROBER = "numba.np.arraymath"


class _NumbaBlasProbe:
    """A meta path finder that fails the import of scipy.linalg (and its cython_blas) while
    numba.np.arraymath is being initialised (it sets `_HAVE_BLAS` from that import), and does nothing
    otherwise."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        prober = sys.modules.get(_PROBER)
        if name in _PROBED and prober is not None and not hasattr(prober, "_HAVE_BLAS"):
            raise ModuleNotFoundError(f"gapfill skips Numba's BLAS probe ({name})", name=name)
        return None


def skip_numba_blas_probe() -> None:
    """Let Numba's start-up BLAS probe find nothing (see the module docstring); a no-op when Numba has
    initialised already or scipy.linalg is loaded."""
    if _PROBER in sys.modules or _PROBED[0] in sys.modules:
        return
    if not any(isinstance(finder, _NumbaBlasProbe) for finder in sys.meta_path):
        sys.meta_path.insert(0, _NumbaBlasProbe())


def use_compiled_kernels(args: argparse.Namespace) -> None:
    """In the command's own process (`args.own_process`, set by realtime.cli.main.main), take the
    engine's compiled kernels (or start their build in the background for the next run); call it before
    the engine is imported. Elsewhere, or until they are built, the engine keeps Numba's kernels (the
    same results)."""
    if not args.own_process:
        return
    from realtime.engine.compiled import use_compiled_kernels as take_compiled

    take_compiled()

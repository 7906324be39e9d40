"""The engine's kernels compiled ahead of time into one extension module, for the commands whose start-up
matters (`gapfill restore` of one file, `gapfill info`): loading it takes milliseconds, where importing
Numba and loading its cached kernels takes about twice what importing numpy, soundfile and onnxruntime does.

The module is built on this machine from the kernels themselves: each kernel of realtime.engine.jit.KERNELS,
compiled by Numba with its own options, is called by a generated one-line trampoline that numba.pycc
exports, for this CPU and its features (those Numba's JIT compiles for), so that the results are Numba's
bit for bit. The first command that wants it and does not find it (`use_compiled_kernels`) starts the
build in a detached background process (10 to 25 s of CPU on a 2-core machine) and runs on Numba's
kernels meanwhile; later commands load it. It goes into the cache folder: $GAPFILL_CACHE_DIR, else
$XDG_CACHE_HOME/gapfill, else ~/.cache/gapfill, named by a key of what it depends on (the engine's
sources, Python, the numpy, Numba and llvmlite installed, the CPU); the folder keeps the KEPT_BUILDS
newest. A build that fails (no C compiler or Python headers, a Numba without pycc) leaves
`kernels-KEY.failed` with its reason, and the commands use Numba's kernels, as before, until that note is
removed. Linux only (the CPU is read from /proc/cpuinfo).

The compiled functions hold the GIL while they run (pycc has no `nogil`), so `live`, `stream`, batches
and programs that import gapfill keep Numba's kernels, which release it.

    python -m realtime.engine.compiled    # build them for this machine now, in the foreground (exit 1: failed)
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from importlib.util import find_spec, module_from_spec, spec_from_file_location
from pathlib import Path
from typing import Callable

from realtime.atomic import atomic_write
from realtime.engine import jit

CACHE_ENV = "GAPFILL_CACHE_DIR"
MODULE_NAME = "gapfill_kernels"
_ENGINE = Path(__file__).resolve().parent
_CPU_FIELDS = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags", "Features",
               "CPU implementer", "CPU architecture", "CPU variant", "CPU part", "CPU revision")
_NUMBA_SETTINGS = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_OPT")
_KEY_CHARS = 16  # of the key's hex digest in file names
KEPT_BUILDS = 4
"""Builds kept in the cache folder (checkouts, versions or CPUs sharing it), the newest."""


def cache_folder() -> Path:
    """Where the compiled kernels live (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gapfill"


def build_key() -> str | None:
    """Hex digest of what the compiled kernels depend on; None where they are not built (not Linux)."""
    try:
        cpu = Path("/proc/cpuinfo").read_text(errors="replace").split("\n\n")[0]
    except OSError:
        return None
    digest = hashlib.sha256()
    for line in cpu.splitlines():
        if line.split(":")[0].strip() in _CPU_FIELDS:
            digest.update(line.encode())
    for source in sorted(_ENGINE.glob("*.py")):
        digest.update(source.name.encode() + source.read_bytes())
    for package in ("numpy", "numba", "llvmlite"):
        spec = find_spec(package)
        stat = os.stat(spec.origin) if spec is not None and spec.origin else None
        digest.update(repr((package, stat and (spec.origin, stat.st_ino, stat.st_size, stat.st_mtime_ns))).encode())
    digest.update(repr((sys.version, EXTENSION_SUFFIXES[0], [os.environ.get(n) for n in _NUMBA_SETTINGS])).encode())
    return digest.hexdigest()


def _paths(folder: Path, key: str) -> tuple[Path, Path, Path]:
    """(extension module, its exports as JSON, the note of a failed build) of build `key`."""
    stem = folder / f"kernels-{key[:_KEY_CHARS]}"
    return stem.with_name(stem.name + EXTENSION_SUFFIXES[0]), stem.with_suffix(".json"), stem.with_suffix(".failed")


def status() -> str:
    """One line: the compiled kernels for this machine, or why there are none."""
    key = build_key()
    if key is None:
        return "Numba's only (ahead-of-time compilation is for Linux)"
    folder = cache_folder()
    module, exports, failed = _paths(folder, key)
    if module.exists() and exports.exists():
        return f"compiled ahead of time for this machine: {module}"
    if failed.exists():
        return f"Numba's: the ahead-of-time build failed (remove {failed} to try again)"
    return f"Numba's: not compiled ahead of time yet (gapfill restore starts that, into {folder})"


def use_compiled_kernels() -> bool:
    """Take the engine's kernels from the compiled module from now on (before any kernel module is
    imported). False, and Numba's kernels, where it is not there: then a build starts in the background
    unless one failed here before or it cannot be built (see the module docstring)."""
    key = build_key()
    if key is None or jit.KERNELS:
        return False
    folder = cache_folder()
    module, exports, failed = _paths(folder, key)
    if not (module.exists() and exports.exists()):
        if not failed.exists() and not _build_running(folder):
            _start_background_build()
        return False
    try:
        listed = json.loads(exports.read_text())
        if listed["key"] != key:
            return False
        spec = spec_from_file_location(MODULE_NAME, module)
        compiled = module_from_spec(spec)
        spec.loader.exec_module(compiled)
    except (OSError, ImportError, ValueError, KeyError, TypeError):
        return False
    jit.use_compiled(compiled, {name: [jit.Export(symbol, tuple(kind and tuple(kind) for kind in kinds))
                                       for symbol, kinds in entries]
                                for name, entries in listed["exports"].items()})
    return True


def _build_running(folder: Path) -> bool:
    """Whether a build holds the cache folder's lock now."""
    import fcntl

    try:
        with open(folder / "kernels.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _start_background_build() -> None:
    """`python -m realtime.engine.compiled` in a new session, detached from this process and its output."""
    package_root = str(_ENGINE.parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH")))))
    try:
        subprocess.Popen([sys.executable, "-m", "realtime.engine.compiled"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    except OSError:
        pass  # this run and the next stay on Numba's kernels


def build_here() -> bool:
    """Build the kernels for this machine into the cache folder unless they are there or a build failed
    (one build at a time, under a lock); a failure leaves its note. Whether they are there now."""
    import fcntl
    import traceback

    key = build_key()
    if key is None:
        return False
    folder = cache_folder()
    module, exports, failed = _paths(folder, key)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "kernels.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if module.exists() and exports.exists():
            return True
        if failed.exists():
            return False
        try:
            build(folder, key)
        except (Exception, SystemExit) as error:  # any failure of the build is recorded (not an interrupt)
            reason = "".join(traceback.format_exception(error)).strip().splitlines()[-20:]
            with atomic_write(failed) as temp:
                temp.write_text("\n".join(reason) + "\n")
            return False
    return module.exists() and exports.exists()


def _trampoline(kernel: jit.Kernel) -> Callable:
    """A Python function of the kernel's arguments that returns the kernel's result (what pycc exports;
    Numba compiles the call to the kernel with the kernel's own options)."""
    import inspect

    names = ", ".join(inspect.signature(kernel.dispatcher.py_func).parameters)
    namespace = {"kernel": kernel.dispatcher}
    exec(f"def trampoline({names}):\n    return kernel({names})\n", namespace)  # noqa: S102 - fixed arity
    return namespace["trampoline"]


def build(folder: Path, key: str) -> None:
    """Compile every kernel of the engine into build `key` in `folder` (the child process's work)."""
    import importlib
    import pkgutil
    import tempfile
    import warnings

    import realtime.engine

    for info in pkgutil.iter_modules(realtime.engine.__path__):
        importlib.import_module(f"realtime.engine.{info.name}")
    if build_key() != key:
        raise SystemExit("the engine's sources changed while the kernels were being compiled")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending deprecation
        from numba.core import sigutils, types
        from numba.core.codegen import AOTCPUCodegen
        from numba.np.numpy_support import as_dtype
        from numba.pycc import CC

    # Numba's JIT compiles for the host CPU's name and features; pycc's "host" takes the name only
    AOTCPUCodegen._customize_tm_features = AOTCPUCodegen._get_host_cpu_features
    compiler = CC(MODULE_NAME)
    compiler.target_cpu = "host"
    listed: dict[str, list] = {}
    for kernel in jit.KERNELS:
        entries = listed.setdefault(kernel.name, [])
        for signature in kernel.signatures:
            symbol = f"{kernel.name.replace('.', '_')}_{len(entries)}"
            compiler.export(symbol, signature)(_trampoline(kernel))
            arguments, _ = sigutils.normalize_signature(signature)
            entries.append([symbol, [[as_dtype(a.dtype).str, a.ndim] if isinstance(a, types.Array) else None
                                     for a in arguments]])
    module, exports, _ = _paths(folder, key)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=folder) as temp:
        compiler.output_dir = temp
        compiler.compile()
        os.replace(Path(temp) / compiler.output_file, module)
    with atomic_write(exports) as temp_exports:
        temp_exports.write_text(json.dumps({"key": key, "exports": listed}))
    _remove_older_builds(folder)


def _remove_older_builds(folder: Path) -> None:
    """Keep the KEPT_BUILDS newest builds in `folder` (and their notes), remove the others' files."""
    builds: dict[str, list[Path]] = {}
    for path in folder.glob("kernels-*"):
        if path.is_file():
            builds.setdefault(path.name[:len("kernels-") + _KEY_CHARS], []).append(path)
    newest_first = sorted(builds.values(), key=lambda paths: max(p.stat().st_mtime for p in paths), reverse=True)
    for paths in newest_first[KEPT_BUILDS:]:
        for path in paths:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(0 if build_here() else 1)

"""A quick start: commands that process no audio (help, usage errors, `devices`) import neither numpy nor
the engine nor its heavy neighbours; a restore imports PyAV only for files libsndfile cannot read, takes
the engine's compiled kernels (built at its first run) instead of importing Numba, with Numba's results
bit for bit, falls back to Numba where they cannot be built, and skips Numba's scipy.linalg probe without
breaking a later scipy.linalg. The child writes its sys.modules when it exits; nothing about time is
asserted (benchmarks/startup.py measures it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO_ROOT
from realtime.cli.main import main
from realtime.engine import jit
from realtime.engine.compiled import CACHE_ENV, KEPT_BUILDS, _build_running, _remove_older_builds, use_compiled_kernels
from realtime.engine.fft import FFTPlan
from realtime.engine.restorer import Restorer
from realtime.frontends.audiofile import restore_file

HEAVY = ("numpy", "numba", "llvmlite", "onnxruntime", "soundfile", "scipy", "av", "yaml", "matplotlib",
         "realtime.engine")
"""Packages a command that processes no audio must not import (a name or a name below it)."""
CHECKOUT_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

LIGHT_COMMANDS = {
    "gapfill": [],
    "--help": ["--help"],
    "--version": ["--version"],
    "restore --help": ["restore", "--help"],
    "stream --help": ["stream", "--help"],
    "info --help": ["info", "--help"],
    "devices --help": ["devices", "--help"],
    "live --help": ["live", "--help"],
    "spectrogram --help": ["spectrogram", "--help"],
    "unknown command": ["restor", "x.mp3"],
    "bad stream rate": ["stream", "--rate", "fast", "--channels", "1"],
    "restore with one path": ["restore", "only.mp3"],
    "batch-only option without -o": ["restore", "a.mp3", "b.wav", "--jobs", "2"],
    "--stats-json with -o": ["restore", "a.mp3", "-o", "out", "--stats-json", "s.json"],
    "devices": ["devices"],
}


# `gapfill ARGS` as its console script runs it (main() reads sys.argv), listing sys.modules at exit
_GAPFILL_LISTING_MODULES = """
import atexit, json, sys
listing = sys.argv.pop(1)
atexit.register(lambda: json.dump(sorted(sys.modules), open(listing, "w")))
from realtime.cli.main import main
sys.exit(main())
"""


def imported_modules(*args: str, tmp_path, env: dict[str, str] = CHECKOUT_ENV) -> tuple[set[str], subprocess.CompletedProcess]:
    """The modules `gapfill ARGS` had imported when it exited, and the finished process."""
    listing = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", _GAPFILL_LISTING_MODULES, str(listing), *args], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=600)
    return set(json.loads(listing.read_text())), done


def heavy(modules: set[str]) -> list[str]:
    """The packages of HEAVY that `modules` holds (or holds a module of)."""
    return [h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules)]


@pytest.mark.parametrize("name", list(LIGHT_COMMANDS))
def test_commands_that_process_no_audio_stay_light(name, tmp_path):
    modules, done = imported_modules(*LIGHT_COMMANDS[name], tmp_path=tmp_path)
    assert "realtime.cli.main" in modules, done.stderr[-2000:]
    assert heavy(modules) == [], f"{name}: {heavy(modules)}"
    if name != "devices":
        assert "sounddevice" not in modules  # PortAudio starts only to list or open devices


def build_kernels(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -m realtime.engine.compiled` (the foreground build) with `env`."""
    return subprocess.run([sys.executable, "-m", "realtime.engine.compiled"], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=900)


@pytest.fixture(scope="module")
def kernels_env(tmp_path_factory) -> dict[str, str]:
    """The checkout's environment with a cache folder holding the kernels, built in the foreground."""
    env = {**CHECKOUT_ENV, CACHE_ENV: str(tmp_path_factory.mktemp("kernels"))}
    done = build_kernels(env)
    assert done.returncode == 0, (done.stderr[-2000:], [p.read_text() for p in Path(env[CACHE_ENV]).glob("*.failed")])
    return env


def _numba_restore(source: Path, target: Path, strength: float | None = None) -> np.ndarray:
    """Restore `source` in this process (Numba's kernels, the default config) and read back what it wrote."""
    restorer = Restorer.from_config(None)
    if strength is not None:
        restorer.set_strength(strength)
    restore_file(restorer, str(source), str(target))
    return sf.read(target, dtype="float32", always_2d=True)[0]


@pytest.mark.parametrize("case", ["44.1 kHz stereo WAV", "22.05 kHz mono MP3 to 48 kHz, strength 0.5"])
def test_restore_takes_the_compiled_kernels_and_matches_numba_bit_for_bit(case, tmp_path, kernels_env):
    stereo = case.startswith("44.1")
    source = tmp_path / ("in.wav" if stereo else "in.mp3")
    sf.write(source, np.random.default_rng(4).uniform(-0.5, 0.5, (22_050, 2 if stereo else 1)), 44_100 if stereo
             else 22_050, **({"subtype": "PCM_16"} if stereo else {"format": "MP3"}))
    strength = [] if stereo else ["--strength", "0.5"]
    modules, done = imported_modules("restore", str(source), str(tmp_path / "out.wav"), *strength, tmp_path=tmp_path,
                                     env=kernels_env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gapfill_kernels" in modules and "realtime.engine.restorer" in modules
    assert heavy(modules) == ["numpy", "onnxruntime", "soundfile", "yaml", "realtime.engine"], heavy(modules)
    assert "av" not in modules and "sounddevice" not in modules
    assert sorted(p.suffix for p in Path(kernels_env[CACHE_ENV]).glob("kernels-*")) == [".json", ".so"]
    expected = _numba_restore(source, tmp_path / "numba.wav", None if stereo else 0.5)
    ours, rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert rate == sf.info(tmp_path / "numba.wav").samplerate == (44_100 if stereo else 48_000)
    assert np.array_equal(ours, expected)


def test_compiled_kernels_pick_their_signature_as_numba_does(tmp_path, kernels_env):
    code = """
import sys
import numpy as np
from realtime.engine.compiled import use_compiled_kernels
assert use_compiled_kernels()
from realtime.engine.fft import FFTPlan
frame = np.load(sys.argv[1])
plan = FFTPlan(frame.size)
spectra = [np.zeros(frame.size // 2 + 1, dtype) for dtype in (np.complex64, np.complex128)]
for spectrum in spectra:
    plan.rfft_into(frame, spectrum)
np.savez(sys.argv[2], *spectra)
assert "numba" not in sys.modules
"""
    frame = np.random.default_rng(5).standard_normal(1024)
    np.save(tmp_path / "frame.npy", frame)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "frame.npy"), str(tmp_path / "spectra.npz")],
                          capture_output=True, text=True, cwd=tmp_path, env=kernels_env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    compiled = np.load(tmp_path / "spectra.npz")
    plan = FFTPlan(frame.size)
    for name, dtype in (("arr_0", np.complex64), ("arr_1", np.complex128)):
        spectrum = np.zeros(frame.size // 2 + 1, dtype)
        plan.rfft_into(frame, spectrum)
        assert compiled[name].dtype == dtype and np.array_equal(compiled[name], spectrum), name


def test_a_first_restore_runs_on_numba_and_builds_the_kernels_in_the_background(tmp_path):
    sf.write(tmp_path / "in.wav", np.random.default_rng(7).uniform(-0.5, 0.5, (9_600, 1)), 48_000)
    env = {**CHECKOUT_ENV, CACHE_ENV: str(tmp_path / "kernels")}
    modules, done = imported_modules("restore", str(tmp_path / "in.wav"), str(tmp_path / "first.wav"),
                                     tmp_path=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "numba" in modules and "gapfill_kernels" not in modules
    deadline = time.monotonic() + 900  # a bound on a busy machine, not a speed being tested
    while len(list((tmp_path / "kernels").glob("kernels-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    while _build_running(tmp_path / "kernels") and time.monotonic() < deadline:
        time.sleep(1)
    assert sorted(p.suffix for p in (tmp_path / "kernels").glob("kernels-*")) == [".json", ".so"]
    modules, done = imported_modules("restore", str(tmp_path / "in.wav"), str(tmp_path / "second.wav"),
                                     tmp_path=tmp_path, env=env)
    assert done.returncode == 0 and "gapfill_kernels" in modules and "numba" not in modules
    first, second = (sf.read(tmp_path / name, dtype="float32")[0] for name in ("first.wav", "second.wav"))
    assert np.array_equal(first, second)


def test_without_a_compiler_restore_uses_numba_skips_its_blas_probe_and_keeps_a_note(tmp_path):
    sf.write(tmp_path / "in.wav", np.random.default_rng(6).uniform(-0.5, 0.5, (9_600, 1)), 48_000)
    env = {**CHECKOUT_ENV, CACHE_ENV: str(tmp_path / "kernels"), "CC": "/bin/false"}  # pycc finds no compiler
    assert build_kernels(env).returncode == 1
    (note,) = (tmp_path / "kernels").glob("kernels-*.failed")
    assert "compiler" in note.read_text() or "false" in note.read_text(), note.read_text()
    stamp = note.stat().st_mtime_ns
    modules, done = imported_modules("restore", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), tmp_path=tmp_path,
                                     env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "numba" in modules and "gapfill_kernels" not in modules
    assert "av" not in modules and "scipy.linalg" not in modules and "sounddevice" not in modules
    assert note.stat().st_mtime_ns == stamp and len(list((tmp_path / "kernels").glob("kernels-*"))) == 1  # no rebuild
    expected = _numba_restore(tmp_path / "in.wav", tmp_path / "numba.wav")
    assert np.array_equal(sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)[0], expected)


def test_the_cache_folder_keeps_the_newest_builds(tmp_path):
    for age in range(KEPT_BUILDS + 2):
        for suffix in (".json", ".so") if age % 2 else (".failed",):
            path = tmp_path / f"kernels-{age:016x}{suffix}"
            path.write_text("")
            os.utime(path, (1e9 - age, 1e9 - age))
    (tmp_path / "kernels.lock").write_text("")
    _remove_older_builds(tmp_path)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == sorted(["kernels.lock"] + [f"kernels-{age:016x}{suffix}" for age in range(KEPT_BUILDS)
                                              for suffix in ((".json", ".so") if age % 2 else (".failed",))])


def test_a_program_that_imports_gapfill_keeps_numbas_kernels(tmp_path, passthrough_config):
    sf.write(tmp_path / "in.wav", np.zeros((4800, 1), np.float32), 48_000)
    assert main(["restore", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--config", passthrough_config]) == 0
    assert jit.KERNELS and all(hasattr(kernel.dispatcher, "py_func") for kernel in jit.KERNELS)
    assert use_compiled_kernels() is False
    with pytest.raises(RuntimeError):
        jit.use_compiled(sys.modules[__name__], {})


def test_after_the_skipped_probe_scipy_linalg_and_numba_blas_still_work():
    code = """
import sys
from realtime.cli.startup import skip_numba_blas_probe
skip_numba_blas_probe()
import realtime.engine.restorer
assert "scipy.linalg" not in sys.modules
import numpy as np
import scipy.linalg
from numba import njit
dot = njit(lambda a, b: np.dot(a, b))
assert dot(np.eye(2), np.ones(2)).tolist() == [1.0, 1.0]
assert scipy.linalg.det(np.eye(2)) == 1.0
"""
    pytest.importorskip("scipy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                          env=CHECKOUT_ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

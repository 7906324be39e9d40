"""A quick start: commands that process no audio (help, usage errors, `devices`) import neither numpy nor
the engine nor its heavy neighbours; a restore imports PyAV only for files libsndfile cannot read, and
skips Numba's scipy.linalg probe without breaking a later scipy.linalg. The child writes its sys.modules
when it exits; nothing about time is asserted (benchmarks/startup.py measures it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO_ROOT

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


def imported_modules(*args: str, tmp_path) -> tuple[set[str], subprocess.CompletedProcess]:
    """The modules `gapfill ARGS` had imported when it exited, and the finished process."""
    listing = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", _GAPFILL_LISTING_MODULES, str(listing), *args], capture_output=True,
                          text=True, cwd=tmp_path, env=CHECKOUT_ENV, timeout=300)
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


def test_restore_of_a_wav_loads_no_pyav_and_skips_numbas_blas_probe(tmp_path, passthrough_config):
    sf.write(tmp_path / "in.wav", np.zeros((4800, 1), np.float32), 48_000)
    modules, done = imported_modules("restore", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--config",
                                     passthrough_config, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "numba" in modules and "realtime.engine.restorer" in modules
    assert "av" not in modules and "scipy.linalg" not in modules and "sounddevice" not in modules


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

"""Shared fixtures: a pass-through engine config, the two engines every behavioural Restorer test runs,
test-signal files, `gapfill` run as a subprocess; and strict mode.

Strict mode (GAPFILL_TEST_STRICT=1, set by the README test command that CI runs): a test that would be
skipped (a missing extra, no jackd) fails instead, so CI never passes by testing less.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
import soundfile as sf

from realtime.engine.config import load_config
from realtime.engine.model_files import shipped_model_path

REPO_ROOT = Path(__file__).resolve().parents[1]
PASSTHROUGH_YAML = "model: {path: passthrough}\nphase: {method: decoded}\n"
STRICT_ENV = "GAPFILL_TEST_STRICT"
FRAMINGS = {"hann": {"window": "hann", "hop": 256}, "asymmetric": {"window": "asymmetric", "hop": 128}}
"""Each framing at the hop of the model trained with it (asymmetric: the low latency one, 383 samples at
48 kHz with the phase look-ahead)."""
ENGINES = {
    "passthrough": {"model": {"path": "passthrough"}, "phase": {"method": "decoded"}},
    "shipped": {},  # the shipped U-Net, codec gate and completion phase: the defaults
    # the framing the defaults do not use, with the pass-through model and completion phase
    "other_framing": {"model": {"path": "passthrough"},
                      "stft": next(f for name, f in FRAMINGS.items() if name != load_config(None).window)},
}
"""Config overrides of the engines the Restorer's behaviour is proven for: both framings, whichever the
defaults use."""


def run_benchmark(module: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """`python -m module args` from the repository root; fails the test with its output unless it exits 0."""
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{module} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def shipped_model_with_metadata(target: Path, drop: tuple[str, ...] = (), **values: str) -> Path:
    """`target`: a copy of the shipped ONNX model with metadata entries replaced or added (`values`) and
    those named in `drop` removed."""
    import onnx

    model = onnx.load(str(shipped_model_path()))
    entries = {p.key: p.value for p in model.metadata_props if p.key not in drop}
    entries.update(values)
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(target))
    return target


def stream_file(restorer, source: Path, target: Path, fmt: str, channels: int):
    """`run_stream` of a prepared restorer from the raw file `source` into `target`; its StreamResult."""
    from realtime.frontends.pipe import run_stream

    fd_in = os.open(source, os.O_RDONLY)
    fd_out = os.open(target, os.O_WRONLY | os.O_CREAT)
    try:
        return run_stream(restorer, fmt, channels, fd_in=fd_in, fd_out=fd_out)
    finally:
        os.close(fd_in)
        os.close(fd_out)

# A test run started in the background by a script (`cmd &` without job control) inherits SIGINT ignored,
# and so would every gapfill it starts (an ignored signal survives exec), so the Ctrl-C tests would see
# gapfill ignore Ctrl-C, as it should when its user asked for that. The tests need the default disposition.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _strict() -> bool:
    return os.environ.get(STRICT_ENV) == "1"


def _fail_skip(report) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped, but {STRICT_ENV}=1 allows no skips (install what the README test command installs): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _strict() and report.skipped and not hasattr(report, "wasxfail"):
        _fail_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if _strict() and report.skipped:
        _fail_skip(report)


@pytest.fixture(params=list(ENGINES))
def engine(request) -> dict:
    """Config overrides of one engine: 'passthrough' (exact delay), 'shipped' (model + gate + completion) or
    'other_framing' (the framing the defaults do not use)."""
    return ENGINES[request.param]


@pytest.fixture
def passthrough_config(tmp_path: Path) -> str:
    """A config whose engine reproduces its input after the latency: pass-through model, decoded phase."""
    path = tmp_path / "passthrough.yaml"
    path.write_text(PASSTHROUGH_YAML)
    return str(path)


def _signal(frames: int, channels: int, seed: int = 0, amplitude: float = 0.5) -> np.ndarray:
    """(frames, channels) float32: a different tone per channel plus noise, peak about `amplitude`."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 48_000.0
    tones = np.stack([np.sin(2 * np.pi * (440.0 * (c + 1)) * t) for c in range(channels)], axis=1)
    return (amplitude * (0.7 * tones + 0.3 * rng.uniform(-1, 1, (frames, channels)))).astype(np.float32)


@pytest.fixture
def make_signal() -> Callable[..., np.ndarray]:
    """make_signal(frames, channels, seed=0, amplitude=0.5) -> (frames, channels) float32 tones plus noise."""
    return _signal


@pytest.fixture
def write_audio() -> Callable[..., np.ndarray]:
    """write_audio(path, frames, channels, rate=48000, subtype=None) -> (frames, channels) float32.

    Writes a test signal; returns what reading the file back as float32 gives (quantised to the subtype).
    """

    def write(
        path: Path, frames: int, channels: int, rate: int = 48_000, subtype: str | None = None
    ) -> np.ndarray:
        sf.write(path, _signal(frames, channels), rate, subtype=subtype)
        return sf.read(path, dtype="float32", always_2d=True)[0]

    return write


def _gapfill_env() -> dict[str, str]:
    """Environment for running `python -m realtime` from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("GAPFILL_DEBUG", None)
    return env


def _gapfill_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "realtime", *args]


@pytest.fixture
def run_gapfill() -> Callable[..., subprocess.CompletedProcess]:
    """run_gapfill(*args, stdin=b"", timeout=120) -> CompletedProcess with bytes stdout/stderr."""

    def run(*args: str, stdin: bytes = b"", timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            _gapfill_command(*args),
            input=stdin, capture_output=True, timeout=timeout, env=_gapfill_env(), cwd=REPO_ROOT,
        )

    return run


@pytest.fixture
def popen_gapfill() -> Iterator[Callable[..., subprocess.Popen]]:
    """popen_gapfill(*args, stderr=PIPE, prelude=None) -> Popen with stdin and stdout as byte pipes; killed
    at teardown. prelude: Python run in the gapfill process before the command (e.g. a patch that stalls it)."""
    started: list[subprocess.Popen] = []

    def start(*args: str, stderr: int = subprocess.PIPE, prelude: str | None = None) -> subprocess.Popen:
        command = _gapfill_command(*args) if prelude is None else [
            sys.executable, "-c", f"{prelude}\nimport sys\nfrom realtime.cli.main import main\nsys.exit(main())", *args]
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=_gapfill_env(), cwd=REPO_ROOT,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def read_until_closed(fd: int) -> bytes:
    """Everything readable from `fd` (a pty's leader side) until the child closes the terminal; closes fd."""
    shown = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(fd)
    return shown

"""Helpers shared by the benchmarks: engine configuration, environment facts, tables, JSON, the entry point."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import yaml

from realtime.engine.config import EngineConfig, load_config
from realtime.errors import GapfillError
from realtime.engine.model_files import model_file, shipped_model_path
from realtime.frontends.coding import Coding, tell_restorer

if TYPE_CHECKING:
    from evaluation.chains import Encoding
    from realtime.engine.restorer import Restorer

MODEL_CHOICES = "auto, default, passthrough or a path to an .onnx file"


def model_setting(model: str | None, config: EngineConfig) -> str:
    """`model.path` to benchmark: `auto` is the shipped model when models/ has it, else the config's."""
    if model in (None, "auto"):
        return "default" if shipped_model_path().is_file() else config.model["path"]
    if model not in ("default", "passthrough") and not Path(model).is_file():
        raise GapfillError(f"cannot load model '{model}': no such file")
    return model if model in ("default", "passthrough") else str(Path(model).resolve())


def engine_config(config_path: str | None, model: str | None = None, threads: int | None = None,
                  phase_method: str | None = None) -> EngineConfig:
    """The engine config of `config_path` (None: shipped defaults) with benchmark overrides applied (the
    framing follows the model chosen unless the file sets it)."""
    model_section: dict[str, Any] = {"path": model_setting(model, load_config(config_path))}
    if threads is not None:
        model_section["threads"] = int(threads)
    overrides: dict[str, dict[str, Any]] = {"model": model_section}
    if phase_method is not None:
        overrides["phase"] = {"method": phase_method}
    return load_config(config_path, overrides)


def write_config(config: EngineConfig, path: Path) -> Path:
    """Write `config` as a complete YAML file (for `gapfill ... --config`); returns `path`."""
    sections = {name: dict(getattr(config, name)) for name in ("model", "stft", "phase", "gate")}
    path.write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    return path


def model_name(config: EngineConfig) -> str:
    """Short name of the configured model: 'passthrough', the shipped file's stem, or a file stem."""
    path = config.model["path"]
    if path == "passthrough":
        return "passthrough"
    return model_file(path).stem


def environment() -> dict[str, Any]:
    """Versions and machine facts that timings depend on."""
    import numba
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
        "onnxruntime": onnxruntime.__version__, "platform": platform.platform(), "cpu": cpu,
        "cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
    }


def read_as_file(restorer: Restorer, encoding: Encoding | None, channels: int) -> None:
    """Tell `restorer` what `gapfill restore` reads from the header of a file of `encoding` (`gate.coded_input:
    auto`, realtime/frontends/coding.py): low-rate, high-rate or neither; a VBR setting (no nominal rate) and
    stored audio (None) neither."""
    tell_restorer(restorer, None if encoding is None or encoding.bitrate_kbps is None else
                  Coding(encoding.codec, float(encoding.bitrate_kbps), channels))


def mean_present(values: list[float | None]) -> float | None:
    """Mean of the values that are not None (4 decimals); None when there are none."""
    present = [v for v in values if v is not None]
    return round(float(np.mean(present)), 4) if present else None


def percent_change(after: float | None, before: float | None) -> float | None:
    """after against before in % (1 decimal); None when either is missing or before is 0."""
    return None if after is None or not before else round(100.0 * (after / before - 1.0), 1)


def max_abs_change(output: np.ndarray, decoded: np.ndarray) -> float:
    """Largest |output - decoded| sample difference (3 significant digits; 0 for empty signals)."""
    change = float(np.max(np.abs(output.astype(np.float64) - decoded))) if decoded.size else 0.0
    return float(f"{change:.3g}")


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> str:
    """A plain-text table, columns right-aligned except the first; floats as given (pre-format them)."""
    text_rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) if text_rows else len(h) for i, h in enumerate(headers)]
    lines = [] if title is None else [title]
    lines.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    lines.append("  ".join("-" * w for w in widths))
    for row in text_rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The same table as GitHub Markdown (for README)."""
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"
    lines = ["| " + " | ".join(headers) + " |", rule]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(data: dict[str, Any], path: str | None) -> None:
    """Write `data` as indented JSON to `path` (nothing when None)."""
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def run_main(main: Any) -> None:
    """Run a benchmark's `main()`: a GapfillError is one line on stderr and exit status 2."""
    try:
        sys.exit(main())
    except GapfillError as exc:
        print(f"{Path(sys.argv[0]).stem}: {exc}", file=sys.stderr)
        sys.exit(2)


def map_clips(name: str, function: Callable[[Any], dict[str, Any]], tasks: list, workers: int,
              initializer: Callable[..., None], initargs: tuple) -> list[dict[str, Any]]:
    """`function` over `tasks` in order, after `initializer(*initargs)`: in this process for workers <= 1,
    else in `workers` spawned processes with one Numba thread each (ViSQOL's kernels are parallel); a
    line `name: clip i/n (clip) done after s` on stderr as each result (a dict with `clip`) comes in."""
    if workers <= 1:
        initializer(*initargs)
        return _with_progress(name, map(function, tasks), len(tasks))
    saved = os.environ.get("NUMBA_NUM_THREADS")
    os.environ["NUMBA_NUM_THREADS"] = "1"
    try:
        with multiprocessing.get_context("spawn").Pool(workers, initializer, initargs) as pool:
            return _with_progress(name, pool.imap(function, tasks, chunksize=1), len(tasks))
    finally:
        if saved is None:
            os.environ.pop("NUMBA_NUM_THREADS", None)
        else:
            os.environ["NUMBA_NUM_THREADS"] = saved


def _with_progress(name: str, results: Iterator[dict[str, Any]], total: int) -> list[dict[str, Any]]:
    """The results in order, a line on stderr as each comes in."""
    began, done = time.perf_counter(), []
    for result in results:
        done.append(result)
        print(f"{name}: clip {len(done)}/{total} ({result['clip']}) done after {time.perf_counter() - began:.0f} s",
              file=sys.stderr, flush=True)
    return done


"""Model files: which ONNX file config `model.path` names, its onnxruntime session, and the gapfill
metadata it carries (docs/CONTRACTS.md): what the configuration needs of a model before the engine loads
it (`model_settings`: the STFT framing it was trained at and the gate calibration chosen for it) and what
`realtime.engine.model` opens it with.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from realtime.errors import GapfillError

SHIPPED_MODEL_NAME = "gapfill-v2.onnx"
"""The file `model.path: default` names, in the repository's models/ (the wheel's `realtime.models`)."""
PASSTHROUGH_FRAMING = {"fft_size": 1024, "hop": 256, "window": "hann"}
"""The framing `model_settings` gives the pass-through model, which works with any."""
GATE_CALIBRATION = {"damage_share": 0.015, "codec_share": 0.2, "codec_share_top_hz": 24000.0}
"""The gate settings that depend on how a model's confidence reads clean and coded audio: a model's metadata
sets them (`gapfill.gate.<key>`, chosen on held-out clips for that model, its card says how); these values,
chosen for model v1 (realtime/engine/default.yaml's notes), hold for a model that sets none."""


def gate_metadata_key(key: str) -> str:
    """The metadata key of the gate setting `key` (one of GATE_CALIBRATION)."""
    return f"gapfill.gate.{key}"


def shipped_model_path() -> Path:
    """Path of the model shipped in the repository's models/ (a wheel installs it as `realtime.models`)."""
    source_tree = Path(__file__).resolve().parents[2] / "models" / SHIPPED_MODEL_NAME
    if source_tree.is_file():
        return source_tree
    try:
        return Path(str(resources.files("realtime.models").joinpath(SHIPPED_MODEL_NAME)))
    except ModuleNotFoundError:
        return source_tree  # reported as missing when loaded


def model_file(path_setting: str) -> Path:
    """The ONNX file config `model.path` names ('default': the shipped one; not 'passthrough')."""
    return shipped_model_path() if path_setting == "default" else Path(path_setting).expanduser()


def ort_session(path: str | Path, threads: int) -> Any:
    """onnxruntime session with the engine's settings: `threads` intra-op threads, one inter-op thread,
    sequential execution, all graph optimisations, CPU provider."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def open_session(path: Path, threads: int) -> Any:
    """`ort_session` of the file at `path`, or a GapfillError that says why it cannot be loaded."""
    if path.is_dir():
        raise GapfillError(f"cannot load model '{path}': it is a directory")
    if not path.is_file():
        raise GapfillError(f"cannot load model '{path}': no such file")
    try:
        return ort_session(path, threads)
    except Exception as exc:  # onnxruntime raises several private exception types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GapfillError(f"cannot load model '{path}': not a valid ONNX model ({reason})") from None


def metadata_int(path: Path, meta: dict[str, str], key: str) -> int:
    """The integer metadata `key` of the model at `path`, or a GapfillError naming it."""
    try:
        return int(meta[key])
    except (KeyError, ValueError):
        raise GapfillError(f"cannot load model '{path}': metadata '{key}' missing") from None


def file_framing(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    """The `stft` settings (fft_size, hop, window) in a model's metadata (hann where it names no window)."""
    return {"fft_size": metadata_int(path, meta, "gapfill.fft_size"), "hop": metadata_int(path, meta, "gapfill.hop"),
            "window": meta.get("gapfill.window", "hann")}


def file_gate_calibration(path: Path, meta: dict[str, str]) -> dict[str, float]:
    """The gate settings of GATE_CALIBRATION in a model's metadata (GATE_CALIBRATION's values where it sets none)."""
    calibration = {}
    for key, fallback in GATE_CALIBRATION.items():
        text = meta.get(gate_metadata_key(key))
        try:
            calibration[key] = fallback if text is None else float(text)
        except ValueError:
            raise GapfillError(f"cannot load model '{path}': metadata '{gate_metadata_key(key)}' is not a "
                               f"number ({text!r})") from None
    return calibration


@lru_cache(maxsize=16)
def _cached_settings(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, dict[str, Any]], ...]:
    file = Path(path)
    meta = open_session(file, 1).get_modelmeta().custom_metadata_map
    return (("stft", file_framing(file, meta)), ("gate", file_gate_calibration(file, meta)))


def model_settings(path_setting: str) -> dict[str, dict[str, Any]]:
    """The settings the model config `model.path` names fixes: `stft` (the framing it was trained at;
    PASSTHROUGH_FRAMING for 'passthrough') and `gate` (its calibration, GATE_CALIBRATION's keys); a file that
    cannot be loaded raises the GapfillError loading it would."""
    if path_setting == "passthrough":
        return {"stft": dict(PASSTHROUGH_FRAMING), "gate": dict(GATE_CALIBRATION)}
    path = model_file(path_setting)
    stat = path.stat() if path.is_file() else None
    cached = _cached_settings(str(path), stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)
    return {section: dict(values) for section, values in cached}

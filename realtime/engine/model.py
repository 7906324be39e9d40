"""Magnitude models: one STFT magnitude frame per hop in, the estimate of the clean frame out.

`PassThroughModel` returns its input (for comparison and for exact-reconstruction tests); `OnnxModel`
runs an exported streaming model (docs/CONTRACTS.md) with onnxruntime, explicit threads, sequential
execution and I/O bound to buffers allocated in `prepare()`; `ModelStage` runs either as the engine's
model stage. A model may also give, per bin,
its confidence (0..1) that the decoded bin is codec-made (output `confidence`); without one the
confidence is 0 everywhere.

`OnnxModel` runs the graph once per channel, batch 1, each channel's buffers aligned alike: onnxruntime
computes the rows of one batch slightly differently (up to a few 1e-6 on identical rows), so a channel's
estimate would depend on its position and on the channel count; this way identical channels get identical
estimates, bit for bit, and a channel the same estimate alone or beside others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.level import undo_gain
from realtime.engine.model_files import file_framing, metadata_int, model_file, open_session
from realtime.engine.stage import HopBuffers
from realtime.errors import GapfillError

_STATE_IN, _STATE_OUT = "state_in.", "state_out."
_ALIGN_BYTES = 64
"""Each channel's input, output and state buffers start on a boundary of this many bytes (a cache line)."""


class MagnitudeModel(Protocol):
    """What the engine needs of a model stage."""

    sample_rate: int
    lookahead_frames: int

    def prepare(self, channels: int) -> None: ...
    def reset(self) -> None: ...
    def process(self, magnitudes: np.ndarray, estimate: np.ndarray, confidence: np.ndarray) -> None: ...
    def describe(self) -> dict[str, Any]: ...


class PassThroughModel:
    """Output magnitude = input magnitude; works with any STFT settings."""

    sample_rate = MODEL_RATE_HZ
    lookahead_frames = 0

    def prepare(self, channels: int) -> None:
        """Nothing to allocate."""

    def reset(self) -> None:
        """No state."""

    def process(self, magnitudes: np.ndarray, estimate: np.ndarray, confidence: np.ndarray) -> None:
        """estimate (C, F) f32 <- magnitudes (C, F) f32; confidence (C, F) f32 <- 0."""
        np.copyto(estimate, magnitudes)
        confidence[:] = 0.0

    def describe(self) -> dict[str, Any]:
        return {"name": "passthrough", "path": None, "lookahead_frames": 0}


def _aligned_rows(rows: int, shape: tuple[int, ...]) -> np.ndarray:
    """(rows, *shape) float32 zeros, each row C-contiguous and starting on an _ALIGN_BYTES boundary (rows
    are padded apart)."""
    size = int(np.prod(shape, dtype=np.int64))
    per_line = _ALIGN_BYTES // 4
    stride = -(-size // per_line) * per_line
    flat = np.zeros(rows * stride + per_line, np.float32)
    start = (-flat.ctypes.data % _ALIGN_BYTES) // 4
    return flat[start : start + rows * stride].reshape(rows, stride)[:, :size].reshape(rows, *shape)


class OnnxModel:
    """A streaming ONNX magnitude model; temporal state is carried between hops in bound buffers."""

    def __init__(self, path: Path, threads: int) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads)
        self.threads = threads
        meta = self.session.get_modelmeta().custom_metadata_map
        self.sample_rate = metadata_int(self.path, meta, "gapfill.sample_rate")
        framing = file_framing(self.path, meta)
        self.fft_size, self.hop, self.window = framing["fft_size"], framing["hop"], framing["window"]
        self.lookahead_frames = metadata_int(self.path, meta, "gapfill.lookahead_frames")
        self.bins = self.fft_size // 2 + 1
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if "magnitude" not in inputs or "magnitude_out" not in outputs:
            raise GapfillError(
                f"cannot load model '{self.path}': needs input 'magnitude' and output 'magnitude_out'"
            )
        self.has_confidence = "confidence" in outputs
        self.state_shapes: dict[str, tuple[int, ...]] = {}
        for name, shape in inputs.items():
            if not name.startswith(_STATE_IN):
                continue
            suffix = name[len(_STATE_IN):]
            if _STATE_OUT + suffix not in outputs or not all(isinstance(d, int) for d in shape[1:]):
                raise GapfillError(f"cannot load model '{self.path}': state '{suffix}' is malformed")
            self.state_shapes[suffix] = tuple(shape[1:])
        self._bindings: list[Any] = []

    def prepare(self, channels: int) -> None:
        """Allocate input, output and state buffers for `channels` streams and bind each channel's rows
        to a binding of its own (batch 1)."""
        self._input = _aligned_rows(channels, (self.bins,))
        self._output = _aligned_rows(channels, (self.bins,))
        self._confidence = _aligned_rows(channels, (self.bins,))
        self._states_in = {s: _aligned_rows(channels, shape) for s, shape in self.state_shapes.items()}
        self._states_out = {s: _aligned_rows(channels, shape) for s, shape in self.state_shapes.items()}
        self._bindings = []
        for c in range(channels):
            binding = self.session.io_binding()
            self._bind(binding, "magnitude", self._input[c : c + 1], output=False)
            self._bind(binding, "magnitude_out", self._output[c : c + 1], output=True)
            if self.has_confidence:
                self._bind(binding, "confidence", self._confidence[c : c + 1], output=True)
            for suffix in self.state_shapes:
                self._bind(binding, _STATE_IN + suffix, self._states_in[suffix][c : c + 1], output=False)
                self._bind(binding, _STATE_OUT + suffix, self._states_out[suffix][c : c + 1], output=True)
            self._bindings.append(binding)
        self._state_pairs = [(self._states_in[s], self._states_out[s]) for s in self.state_shapes]

    @staticmethod
    def _bind(binding: Any, name: str, array: np.ndarray, output: bool) -> None:
        bind = binding.bind_output if output else binding.bind_input
        bind(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)

    def reset(self) -> None:
        """Zero the temporal state (a silent past)."""
        for state_in, _ in self._state_pairs:
            state_in[:] = 0.0

    def process(self, magnitudes: np.ndarray, estimate: np.ndarray, confidence: np.ndarray) -> None:
        """estimate, confidence (C, F) f32 <- model(magnitudes (C, F) f32), frame k - lookahead_frames."""
        np.copyto(self._input, magnitudes)
        for binding in self._bindings:
            self.session.run_with_iobinding(binding)
        np.copyto(estimate, self._output)
        np.copyto(confidence, self._confidence)
        for state_in, state_out in self._state_pairs:
            np.copyto(state_in, state_out)

    def describe(self) -> dict[str, Any]:
        return {"name": self.path.stem, "path": str(self.path), "lookahead_frames": self.lookahead_frames,
                "threads": self.threads, "confidence": self.has_confidence}


class ModelStage:
    """The model stage: buffers.model_in -> buffers.estimate (at the decoded level) and buffers.confidence."""

    name = "model"

    def __init__(self, model: MagnitudeModel, hop: int) -> None:
        self.model, self.hop = model, hop

    @property
    def latency_samples(self) -> int:
        """The model's look-ahead, hop * lookahead_frames samples at the model rate."""
        return self.hop * self.model.lookahead_frames

    def prepare(self, channels: int) -> None:
        """Allocate the model's buffers and state for `channels` streams."""
        self.model.prepare(channels)

    def reset(self) -> None:
        """Zero the model's temporal state."""
        self.model.reset()

    def process_hop(self, buffers: HopBuffers) -> None:
        """Run the model on buffers.model_in and divide its estimate by the level stage's gain."""
        self.model.process(buffers.model_in, buffers.estimate, buffers.confidence)
        if buffers.model_gain[0] != 1.0:
            undo_gain(buffers.estimate, buffers.model_gain)


def load_model(path_setting: str, threads: int, fft_size: int, hop: int, window: str = "hann") -> MagnitudeModel:
    """Build the model named by config `model.path`; check that its STFT settings match the config's."""
    if path_setting == "passthrough":
        return PassThroughModel()
    path = model_file(path_setting)
    model = OnnxModel(path, threads)
    if model.sample_rate != MODEL_RATE_HZ:
        raise GapfillError(f"model '{path}': sample rate {model.sample_rate} Hz is not supported ({MODEL_RATE_HZ} only)")
    if (model.fft_size, model.hop) != (fft_size, hop):
        raise GapfillError(
            f"config 'stft': model '{path.name}' was trained with fft_size {model.fft_size} and hop "
            f"{model.hop}, config has {fft_size} and {hop}"
        )
    if model.window != window:
        raise GapfillError(f"config 'stft.window': model '{path.name}' was trained with the {model.window} "
                           f"framing, config has {window}")
    return model

"""The `Restorer` processor: any host block in, the same number of restored samples out, fixed latency.

    from realtime import restore
    restored = restore(audio, 44_100)          # (samples,) or (channels, samples), same shape back, aligned

Life cycle (pedalboard/JUCE style): `prepare(sample_rate, channels, max_block)` allocates everything;
`process(block, out=None)` takes (channels, n) float32 or float64 for any n >= 0 and returns n samples
(a new array, or `out` when given: the allocation-free form every front end uses); `flush()` returns the
tail at end of stream; `reset()` forgets the past; `latency_samples` is the true delay at the host rate.
`compensated` and `restore` drop the latency and append the tail, so output sample t is input sample t,
and let the gate decide from the stream's first `gate.decide_ahead_s` seconds before restoring them
(`decide_ahead`): input at hand ahead of time is restored from its first sample on.

Inside: the hop chain (realtime/engine/chain.py) of the stages analysis -> level -> model -> gate ->
phase -> strength -> synthesis -> bypass -> ceiling at the model rate, wrapped by the resampler
(realtime/engine/resampled.py) at other host rates. Where the stages change nothing, the output is the
input delayed by `latency_samples`, bit for bit (the bypass stage, and the wrapper's own at other rates).
`stages` names them; `observe` attaches a read-only observer to every stage of every hop; `set_strength`
(0..1) says how far the output moves from the decoded input toward the restoration.

Real time: every Numba kernel of the signal path has fixed signatures, compiled when its module is
imported (or loaded from the cache), and releases the GIL; `prepare` runs every stage once (onnxruntime's
first run), so no `process` call after it compiles or stalls, whatever the block's size or layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from realtime.engine.analysis import AnalysisStage
from realtime.engine.bypass import BypassStage
from realtime.engine.ceiling import CeilingStage
from realtime.engine.chain import HOP_CLOCK, HopChain
from realtime.engine.config import BLOCK_SAMPLES, MODEL_RATE_HZ, EngineConfig, load_config
from realtime.engine.gate import CodecGate
from realtime.engine.level import InputLevel
from realtime.engine.model import ModelStage, PassThroughModel, load_model
from realtime.engine.phase import PhaseStage
from realtime.engine.resampled import Resampled
from realtime.engine.stage import HopObserver, LongTermStage, Stage
from realtime.engine.strength import StrengthStage
from realtime.engine.synthesis import SynthesisStage
from realtime.engine.windows import synthesis_span
from realtime.errors import GapfillError

SUPPORTED_RATES_HZ = (8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 88_200, 96_000,
                      176_400, 192_000)
"""Host rates (Hz) the engine runs at: telephone audio and LAME's lowest rates up to high-resolution masters;
every one but the model rate through the streaming resampler (`Resampled`)."""
MAX_CHANNELS = 8
LATENCY_PART_NAMES = {HOP_CLOCK: "stft", "analysis": "stft", "synthesis": "stft", "model": "model_lookahead",
                      "phase": "phase_lookahead"}
"""How `latency_parts` names the chain's parts: the framing (hop clock, analysis, synthesis) is 'stft'; a
stage not named here that adds delay appears under its own name; the resampler's part is 'resampling'."""

WINDOW_DESCRIPTIONS = {"hann": "hann (periodic), dual synthesis window",
                       "asymmetric": "asymmetric: long analysis window, synthesis window of two hops"}
"""What `gapfill info` says of each framing (`stft.window`)."""

ConfigSource = Union[str, Path, EngineConfig, Mapping[str, Mapping[str, Any]], None]
"""What `restore` takes as `config`: a YAML path, a loaded config, overrides of the defaults, or None."""
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class Restorer:
    """Streaming restorer; one instance per stream, channels (or a stereo pair's mid and side) restored
    independently."""

    supported_rates = SUPPORTED_RATES_HZ
    max_channels = MAX_CHANNELS

    def __init__(self, config: EngineConfig | None = None) -> None:
        """A restorer with `config` (None: the shipped defaults); it loads the model, `prepare` does the rest."""
        config = load_config(None) if config is None else config
        self.config = config
        self.fft_size, self.hop = config.fft_size, config.hop
        window = config.window
        self.model = load_model(config.model["path"], config.model["threads"], self.fft_size, self.hop, window)
        passthrough = isinstance(self.model, PassThroughModel)
        self.gate_enabled = bool(config.gate["enabled"]) and not passthrough
        boost = 0.0 if passthrough else config.model["max_boost_db"]
        stereo = config.model["stereo"]
        stages: tuple[Stage, ...] = (
            AnalysisStage(self.fft_size, self.hop, stereo, window),
            InputLevel(config.model["input_level_db"], boost, config.gate["active_db"], MODEL_RATE_HZ,
                       self.fft_size, self.hop, window),
            ModelStage(self.model, self.hop),
            CodecGate(config.gate, MODEL_RATE_HZ, self.fft_size, self.hop, enabled=self.gate_enabled,
                      window=window),
            PhaseStage(config.phase, self.fft_size, self.hop, window),
            StrengthStage(config.model["strength"], self.fft_size, config.phase["lookahead_frames"]),
            SynthesisStage(self.fft_size, self.hop, stereo, window),
        )
        span = synthesis_span(self.fft_size, self.hop, window)
        stages += (BypassStage(self.hop, span, sum(stage.latency_samples for stage in stages)),
                   CeilingStage(config.model["ceiling_db"]))
        self.stages: Mapping[str, Stage] = MappingProxyType({stage.name: stage for stage in stages})
        """The engine's stages by name, in signal order (read them; never call their process methods)."""
        self.chain = HopChain(stages, self.fft_size, self.hop, self.model.lookahead_frames)
        self._processor: HopChain | Resampled = self.chain
        self.sample_rate: int | None = None
        self.channels = self.max_block = 0
        self.nonfinite_count = 0

    @classmethod
    def from_config(cls, path: str | Path | None = None,
                    overrides: Mapping[str, Mapping[str, Any]] | None = None) -> "Restorer":
        """A restorer built from the YAML file at `path` (None: the shipped defaults) and `overrides`
        (section -> key -> value, validated like the file: `{"phase": {"method": "rtpghi"}}`)."""
        return cls(load_config(path, overrides))

    @property
    def strength(self) -> float:
        """How far each restored bin moves from the decoded magnitude toward the restored one: 0 (the input,
        delayed by the latency, bit for bit) .. 1 (full restoration, the default; `model.strength`)."""
        return self.stages["strength"].strength

    @property
    def coded_input(self) -> bool:
        """Whether the stream is taken as decoded from a lossy codec at a low bit rate, so that the gate counts a
        codec cliff without codec damage under it (`gate.coded_input`; `auto`: False until a front end that
        reads the file's coding says otherwise, `set_coded_input`)."""
        return self.stages["gate"].coded_input

    def set_coded_input(self, coded: bool) -> None:
        """Take the stream to come as decoded from a lossy codec at a low bit rate (True) or not (False); call
        it before the stream (before `restore`, or between `reset` and the first `process`)."""
        self.stages["gate"].set_coded_input(coded)

    @property
    def high_rate_input(self) -> bool:
        """Whether the stream is taken as decoded from a lossy codec at a high bit rate, whose cliffs the gate
        takes for the source's own (False until a front end that reads the file's coding says otherwise,
        `set_high_rate_input`)."""
        return self.stages["gate"].high_rate_input

    def set_high_rate_input(self, high: bool) -> None:
        """Take the stream to come as decoded from a lossy codec at a high bit rate (True: no cliff counts as a
        band limit, the codec-made share still does) or not (False); call it before the stream, as
        `set_coded_input`."""
        self.stages["gate"].set_high_rate_input(high)

    def set_strength(self, strength: float) -> None:
        """Set `strength` (0..1; GapfillError otherwise) at any time, from any thread: the next hop uses it."""
        self.stages["strength"].set_strength(strength)

    # -- latency ---------------------------------------------------------------------------------
    @property
    def engine_latency_samples(self) -> int:
        """Delay at the model rate, in samples: the hop chain's, the sum over its stages."""
        return self.chain.latency_samples

    @property
    def latency_samples(self) -> int:
        """True input-to-output delay at the host rate, in samples (after `prepare`)."""
        self._require_prepared()
        return self._latency

    @property
    def latency_parts(self) -> dict[str, int]:
        """The latency broken into parts (`LATENCY_PART_NAMES`), in samples at the host rate, each the
        chain's part at the model rate rounded to host samples; 'resampling' is the rest (0 at 48 kHz).
        The parts sum to `latency_samples`."""
        self._require_prepared()
        model_rate_parts: dict[str, int] = {}
        for name, samples in self.chain.latency_parts.items():
            if samples or name in LATENCY_PART_NAMES:
                part = LATENCY_PART_NAMES.get(name, name)
                model_rate_parts[part] = model_rate_parts.get(part, 0) + samples
        scale = self.sample_rate / MODEL_RATE_HZ
        parts = {name: round(samples * scale) for name, samples in model_rate_parts.items()}
        parts["resampling"] = self.latency_samples - sum(parts.values())
        return parts

    # -- life cycle ------------------------------------------------------------------------------
    def prepare(self, sample_rate: int, channels: int, max_block: int) -> None:
        """Allocate every buffer for `channels` streams at `sample_rate` Hz and blocks up to `max_block`."""
        check_sample_rate(sample_rate)
        if not 1 <= channels <= MAX_CHANNELS:
            raise GapfillError(f"{channels} channels are not supported (1 to {MAX_CHANNELS})")
        if max_block < 1:
            raise GapfillError(f"block size must be at least 1 sample, got {max_block}")
        self.sample_rate, self.channels, self.max_block = sample_rate, channels, max_block
        self._processor = (self.chain if sample_rate == MODEL_RATE_HZ
                           else Resampled(self.chain, sample_rate, self.stages["ceiling"].ceiling))
        self._processor.prepare(channels, max_block)
        self._latency = self._processor.latency_samples
        self._staged = np.zeros((channels, max_block), np.float32)  # float64 / read-only input, as float32
        self._silence = np.zeros((channels, max_block), np.float32)
        self._scratch = np.zeros((channels, max_block), np.float32)
        self.reset()
        self._warm_up()

    def _warm_up(self) -> None:
        """Run two hops of silence through every stage, in whole and partial blocks, then forget them.

        onnxruntime's first run (and any kernel of a stage without fixed signatures, compiled at its first
        call for the stage's fixed buffer types) happens here, not in the first real `process()` call.
        """
        remaining = 2 * self.hop * self.sample_rate // MODEL_RATE_HZ + 2
        while remaining > 0:
            n = min(self.max_block, remaining)
            self._process_piece(self._silence[:, :n], self._scratch[:, :n])
            self._process_piece(self._silence[:, :1], self._scratch[:, :1])
            remaining -= n + 1
        self.reset()

    def reset(self) -> None:
        """Forget all signal history: the next sample is processed as if the stream just began."""
        self._require_prepared()
        self._processor.reset()
        self.nonfinite_count = 0

    def observe(self, observer: HopObserver | None) -> None:
        """Call `observer` around every stage of every hop from now on (None: stop). Read-only: for taps,
        stage timings and evaluation; it runs on the processing thread."""
        self.chain.observe(observer)

    @property
    def decide_ahead_samples(self) -> int:
        """How much of a stream's head `compensated` lets the gate decide from (`gate.decide_ahead_s`),
        in samples at the host rate (after `prepare`); 0 without a gate (the pass-through model, or
        `gate.enabled` false), which has nothing to decide."""
        self._require_prepared()
        return round(self.config.gate["decide_ahead_s"] * self.sample_rate) if self.gate_enabled else 0

    def decide_ahead(self, head: np.ndarray) -> None:
        """Start the stream with what its head (channels, n) shows: the head runs through the engine (its
        output discarded), then everything is reset but the long-term statistics of the gate and the input
        level and the gate's decisions, which the stream starts with. The stream itself, head included,
        then goes through `process` from its first sample: where the head shows codec damage, restoration
        starts there instead of after the gate's decision time."""
        self.reset()
        for start in range(0, head.shape[1], self.max_block):
            piece = head[:, start : start + self.max_block]
            self.process(piece, out=self._scratch[:, : piece.shape[1]])
        kept = {name: stage.statistics() for name, stage in self.stages.items() if isinstance(stage, LongTermStage)}
        self.reset()
        for name, statistics in kept.items():
            self.stages[name].start_from(statistics)

    # -- processing ------------------------------------------------------------------------------
    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Restore block (channels, n), float32 or float64, any layout, any n >= 0 (longer than
        `max_block`: processed in pieces). Returns (channels, n) float32: `out` when given (float32,
        writable, that shape; may be `block` itself), else a new array. With a float32 writable block
        and `out`, nothing is allocated.

        Non-finite input samples are replaced by 0 and counted in `nonfinite_count`.
        """
        self._require_prepared()
        if (not isinstance(block, np.ndarray) or block.ndim != 2 or block.shape[0] != self.channels
                or block.dtype not in _FLOATS):
            raise ValueError(f"Restorer.process: block must be a ({self.channels}, n) float32 or float64 array, "
                             f"got {_describe(block)}")
        n = block.shape[1]
        if out is None:
            out = np.empty((self.channels, n), np.float32)
        elif (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != (self.channels, n)
              or not out.flags.writeable):
            raise ValueError(f"Restorer.process: out must be a writable ({self.channels}, {n}) float32 array, "
                             f"got {_describe(out)}")
        staged = block.dtype != np.float32 or not (block.flags.writeable and block.flags.aligned)
        if n <= self.max_block:
            self._process_piece(block, out, staged)
        else:
            for start in range(0, n, self.max_block):
                stop = min(n, start + self.max_block)
                self._process_piece(block[:, start:stop], out[:, start:stop], staged)
        self.nonfinite_count = self.chain.nonfinite_count
        return out

    def _process_piece(self, block: np.ndarray, out: np.ndarray, staged: bool = False) -> None:
        """block (C, m <= max_block) -> out (C, m) float32; `staged`: copy block to float32 first."""
        if staged:
            piece = self._staged[:, : block.shape[1]]
            np.copyto(piece, block, casting="same_kind")
            block = piece
        self._processor.process(block, out)

    def flush(self) -> np.ndarray:
        """Output for `latency_samples` of silence after the last block: the tail, a new (channels, latency) array."""
        self._require_prepared()
        tail = np.zeros((self.channels, self._latency), np.float32)
        for start in range(0, self._latency, self.max_block):
            stop = min(self._latency, start + self.max_block)
            self.process(self._silence[:, : stop - start], out=tail[:, start:stop])
        return tail

    def restore(self, audio: npt.ArrayLike, sample_rate: int, max_block: int = BLOCK_SAMPLES) -> np.ndarray:
        """A whole signal, (samples,) or (channels, samples) float32/float64 at `sample_rate` Hz, restored:
        same shape and dtype, delay compensated (output sample t is input sample t), the gate deciding from
        its first `gate.decide_ahead_s` seconds first (`compensated`). Prepares the restorer (or only
        resets it when it is already prepared for this rate, channels and block)."""
        signal = np.asarray(audio)
        if signal.dtype not in _FLOATS or signal.ndim not in (1, 2):
            raise ValueError("restore: audio must be (samples,) or (channels, samples) float32 or float64, "
                             f"got {_describe(signal)}")
        planar = signal.reshape(1, -1) if signal.ndim == 1 else signal
        channels, n = planar.shape
        if channels > MAX_CHANNELS >= n:
            raise ValueError(f"restore: audio must be (channels, samples), got {signal.shape}: transpose a "
                             "(frames, channels) array such as soundfile's")
        if (self.sample_rate, self.channels, self.max_block) == (sample_rate, channels, max_block):
            self.reset()
        else:
            self.prepare(sample_rate, channels, max_block)
        out = np.empty((channels, n), np.float32)
        position = 0
        for piece in compensated(self, (planar[:, start : start + max_block] for start in range(0, n, max_block))):
            out[:, position : position + piece.shape[1]] = piece
            position += piece.shape[1]
        return out.reshape(signal.shape).astype(signal.dtype, copy=False)

    def codec_report(self) -> dict[str, Any]:
        """What the codec gate detected since the last `reset`: `engaged` (bool), `cutoff_hz` (float or
        None), `engaged_after_s` (s from stream start to the first engagement, or None), `restored_share`
        (share of active frames the gate restored anything in, 0..1), `gate_enabled` (False with the
        pass-through model, which has nothing to add) and `model_input_gain_db` (the gain the level stage
        gives the model's input now, dB; 0 when off)."""
        report = dict(self.stages["gate"].report())
        report["gate_enabled"] = self.gate_enabled
        report["model_input_gain_db"] = round(self.stages["level"].gain_db, 2)
        return report

    def describe(self) -> dict[str, Any]:
        """Model, STFT, phase and latency facts for `gapfill info` (latency needs `prepare`)."""
        facts: dict[str, Any] = {
            "model": self.model.describe(),
            "model_rate_hz": MODEL_RATE_HZ,
            "stft": {"fft_size": self.fft_size, "hop": self.hop, "bins": self.fft_size // 2 + 1,
                     "window": WINDOW_DESCRIPTIONS[self.config.window]},
            "phase": dict(self.config.phase),
            "gate": {"enabled": self.gate_enabled},
            "strength": self.strength,
            "ceiling_db": self.config.model["ceiling_db"],
            "stereo": self.config.model["stereo"],
            "input_level": {"enabled": self.stages["level"].enabled,
                            "target_db": self.config.model["input_level_db"],
                            "max_boost_db": self.config.model["max_boost_db"]},
            "config": self.config.source,
            "supported_rates_hz": list(SUPPORTED_RATES_HZ),
            "max_channels": MAX_CHANNELS,
        }
        if self.sample_rate is not None:
            facts["sample_rate_hz"] = self.sample_rate
            facts["latency_samples"] = self.latency_samples
            facts["latency_ms"] = 1000.0 * self.latency_samples / self.sample_rate
            facts["latency_parts"] = self.latency_parts
        return facts

    def _require_prepared(self) -> None:
        if self.sample_rate is None:
            raise RuntimeError("Restorer.prepare() must be called first")


def check_sample_rate(sample_rate: int) -> None:
    """Raise a one-line GapfillError unless `sample_rate` (Hz) is one of SUPPORTED_RATES_HZ."""
    if sample_rate not in SUPPORTED_RATES_HZ:
        rates = ", ".join(str(r) for r in SUPPORTED_RATES_HZ)
        raise GapfillError(f"sample rate {sample_rate} Hz is not supported (supported: {rates})")


def _describe(array: Any) -> str:
    """'float64 (2, 100) array' or the type's name: what a caller gave, for a one-line error."""
    if isinstance(array, np.ndarray):
        return f"{array.dtype} {array.shape} array"
    return type(array).__name__


def compensated(restorer: Restorer, blocks: Iterable[np.ndarray], compensate: bool = True) -> Iterator[np.ndarray]:
    """Restore blocks (channels, n) of any length; yield output blocks (channels, m) float32, each valid
    until the next step (one buffer, allocated here, is reused).

    compensate: let the gate decide from the first `restorer.decide_ahead_samples` of input before
    restoring them (`Restorer.decide_ahead`; the blocks up to there are read, and copied, first), drop the
    first `restorer.latency_samples` of output and end with the flushed tail, so the output has as many
    samples as the input, aligned; otherwise one output sample per input sample (delayed by the latency),
    as soon as it comes in, and no tail.
    """
    if compensate and restorer.decide_ahead_samples:
        blocks = _decided_ahead(restorer, blocks)
    skip = restorer.latency_samples if compensate else 0
    buffer = np.empty((restorer.channels, restorer.max_block), np.float32)
    for block in blocks:
        for start in range(0, block.shape[1], restorer.max_block):
            piece = block[:, start : start + restorer.max_block]
            out = restorer.process(piece, out=buffer[:, : piece.shape[1]])
            dropped = min(skip, out.shape[1])
            skip -= dropped
            if out.shape[1] > dropped:
                yield out[:, dropped:]
    if compensate:
        yield restorer.flush()[:, skip:]


def _decided_ahead(restorer: Restorer, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The same blocks, the first ones copied (a reader may reuse its buffer); before the first is
    yielded, `restorer.decide_ahead` has seen the first `decide_ahead_samples` of them (or all there are)."""
    wanted = restorer.decide_ahead_samples
    blocks = iter(blocks)
    held: list[np.ndarray] = []
    count = 0
    for block in blocks:
        held.append(np.array(block, copy=True))
        count += block.shape[1]
        if count >= wanted:
            break
    head = np.concatenate(held, axis=1)[:, :wanted] if held else np.zeros((restorer.channels, 0), np.float32)
    restorer.decide_ahead(head)
    yield from held
    yield from blocks


def restore(audio: npt.ArrayLike, sample_rate: int, config: ConfigSource = None,
            strength: float | None = None) -> np.ndarray:
    """Restore a whole signal in one call: (samples,) or (channels, samples), float32 or float64, at
    `sample_rate` Hz (one of SUPPORTED_RATES_HZ) -> the same shape and dtype, aligned sample for sample.

    config: a YAML file, an `EngineConfig`, overrides of the defaults (`{"phase": {"method": "rtpghi"}}`)
    or None (the shipped model and settings); strength: 0..1 (see `Restorer.strength`), None: the config's.
    """
    if isinstance(config, EngineConfig):
        restorer = Restorer(config)
    elif isinstance(config, Mapping):
        restorer = Restorer.from_config(None, config)
    else:
        restorer = Restorer.from_config(config)
    if strength is not None:
        restorer.set_strength(strength)
    return restorer.restore(audio, sample_rate)

"""Codecs and decode chains: how compressed audio really reaches the restorer.

An `Encoding` is an encoder and its setting, the channels it is given and the rate of the PCM it gets:
LAME through `lameenc` (which resamples low bitrates to 16-24 kHz, as the `lame` tool does) or one of
ffmpeg's encoders (libmp3lame, which keeps the input rate, libshine, aac, libvorbis, libopus, libtwolame).

A `DecodeChain` is what turns the compressed bytes back into samples, as a user's tools would, in order:
1. the decoder: minimp3 (`miniaudio`), libmpg123 or libvorbis/libopus through `soundfile`, or ffmpeg;
2. the rate the decoded file is stored at (`file_rate`: the codec's own, 44.1 or 48 kHz) and the
   resampler that gets it there (soxr at a quality, ffmpeg's swr, scipy's `resample_poly`, and, for
   evaluation only, libsamplerate's fastest sinc converter: a resampler the model never trained on);
3. a gain (dB) and an added noise floor (white or pink, dBFS RMS), as a sound card or a level change adds;
4. the sample format it is stored in: float, 16-bit without or with TPDF dither (+-1 LSB), 24-bit;
5. to 48 kHz by gapfill's own streaming resampler when the file is not at 48 kHz (what the engine does).

`degrade(x, encoding, chain)`: clean (channels, n) float32 at 48 kHz -> what gapfill gets, (C, n) float32 at
48 kHz, aligned to the reference (lag by cross-correlation below 5 kHz, removed with sub-sample precision),
and the reference (the mid (L+R)/2 for mono encodings).
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from realtime.engine.config import MODEL_RATE_HZ

FFMPEG_ENCODERS = ("libmp3lame", "libshine", "aac", "libvorbis", "libopus", "libtwolame")
ENCODERS = ("lameenc",) + FFMPEG_ENCODERS
_CONTAINERS = {"lameenc": "mp3", "libmp3lame": "mp3", "libshine": "mp3", "aac": "adts", "libvorbis": "ogg",
               "libopus": "ogg", "libtwolame": "mp2"}
_CODECS = {"lameenc": "mp3", "libmp3lame": "mp3", "libshine": "mp3", "aac": "aac", "libvorbis": "vorbis",
           "libopus": "opus", "libtwolame": "mp2"}
DECODERS = ("minimp3", "soundfile", "ffmpeg")
TRAINING_RESAMPLERS = ("soxr_vhq", "soxr_hq", "soxr_mq", "soxr_lq", "swr", "scipy")
RESAMPLERS = TRAINING_RESAMPLERS + ("src_fastest",)
SAMPLE_FORMATS = ("float", "s16", "s16_tpdf", "s24")
_LAG_BAND_HZ = 5_000.0


@dataclass(frozen=True)
class Encoding:
    """An encoder setting: CBR/ABR `bitrate_kbps`, or VBR `quality` (LAME -q:a, Vorbis q); input PCM rate in Hz."""

    encoder: str
    bitrate_kbps: int | None = None
    quality: float | None = None
    channels: int = 1
    input_rate: int = MODEL_RATE_HZ

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r} (one of {', '.join(ENCODERS)})")
        if (self.bitrate_kbps is None) == (self.quality is None):
            raise ValueError("an Encoding has a bitrate or a quality, not both")

    @property
    def container(self) -> str:
        """The stream format the encoder writes: mp3, adts (AAC), ogg (Vorbis, Opus) or mp2."""
        return _CONTAINERS[self.encoder]

    @property
    def codec(self) -> str:
        """FFmpeg's name of the codec (what a file of it reports): mp3, aac, vorbis, opus or mp2."""
        return _CODECS[self.encoder]

    @property
    def name(self) -> str:
        """e.g. `lameenc_32k_mono_48k`, `aac_64k_stereo_44.1k`, `libvorbis_q0_mono_48k`."""
        setting = f"{self.bitrate_kbps}k" if self.bitrate_kbps is not None else f"q{self.quality:g}"
        mode = "mono" if self.channels == 1 else "stereo"
        return f"{self.encoder}_{setting}_{mode}_{self.input_rate / 1000:g}k"


@dataclass(frozen=True)
class DecodeChain:
    """Decoder, stored rate ('codec' or Hz) and resampler, gain (dB), noise floor (dBFS RMS), sample format."""

    decoder: str = "minimp3"
    file_rate: int | str = "codec"
    resampler: str = "soxr_vhq"
    gain_db: float = 0.0
    noise_dbfs: float | None = None
    noise_color: str = "white"
    sample_format: str = "float"

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {self.decoder!r} (one of {', '.join(DECODERS)})")
        if self.resampler not in RESAMPLERS:
            raise ValueError(f"unknown resampler {self.resampler!r} (one of {', '.join(RESAMPLERS)})")
        if self.sample_format not in SAMPLE_FORMATS:
            raise ValueError(f"unknown sample format {self.sample_format!r} (one of {', '.join(SAMPLE_FORMATS)})")
        if self.noise_color not in ("white", "pink"):
            raise ValueError(f"noise colour must be white or pink, got {self.noise_color!r}")

    @property
    def name(self) -> str:
        """e.g. `minimp3_codec_float`, `ffmpeg_48k-swr_s16_tpdf_noise-80pink`."""
        rate = "codec" if self.file_rate == "codec" else f"{int(self.file_rate) / 1000:g}k-{self.resampler}"
        return "_".join([self.decoder, rate, self.storage_name])

    @property
    def storage_name(self) -> str:
        """The part of `name` that `store` applies: e.g. `float`, `s16_tpdf_gain-30`, `s24_noise-75white`."""
        parts = [self.sample_format]
        if self.gain_db:
            parts.append(f"gain{self.gain_db:+g}")
        if self.noise_dbfs is not None:
            parts.append(f"noise{self.noise_dbfs:g}{self.noise_color}")
        return "_".join(parts)

    def decodes(self, encoding: Encoding) -> bool:
        """Whether this chain's decoder reads what `encoding` writes."""
        if self.decoder == "minimp3":
            return encoding.container == "mp3"
        if self.decoder == "soundfile":
            return encoding.container in ("mp3", "ogg")
        return True


TRAINING_CHAIN = DecodeChain()
"""The chain of the first training pairs: minimp3 at the MP3's rate, float, then to 48 kHz."""


# -- encoding ----------------------------------------------------------------------------------------
def _ffmpeg(args: list[str], data: bytes) -> bytes:
    """Run ffmpeg with `args` between the input and output options, stdin `data`; its stdout."""
    result = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", *args],
                            input=data, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def _soxr(y: np.ndarray, in_rate: int, out_rate: int, quality: str = "VHQ") -> np.ndarray:
    """(C, n) -> (C, m) float32 with the soxr package at `quality` (QQ, LQ, MQ, HQ, VHQ)."""
    import soxr

    return np.ascontiguousarray(soxr.resample(np.ascontiguousarray(y.T), in_rate, out_rate, quality=quality).T,
                                dtype=np.float32)


def encode(reference: np.ndarray, encoding: Encoding) -> bytes:
    """Reference (encoding.channels, n) float32 at 48 kHz -> the compressed stream's bytes."""
    pcm = np.asarray(reference, np.float32)
    if encoding.input_rate != MODEL_RATE_HZ:
        pcm = _soxr(pcm, MODEL_RATE_HZ, encoding.input_rate)
    if encoding.encoder == "lameenc":
        import lameenc

        enc = lameenc.Encoder()
        enc.set_bit_rate(int(encoding.bitrate_kbps))
        enc.set_in_sample_rate(encoding.input_rate)
        enc.set_channels(encoding.channels)
        enc.set_quality(2)
        samples = np.round(np.clip(pcm.T, -1.0, 32767 / 32768) * 32768).astype(np.int16)
        return bytes(enc.encode(np.ascontiguousarray(samples).tobytes()) + enc.flush())
    setting = (["-b:a", f"{encoding.bitrate_kbps}k"] if encoding.bitrate_kbps is not None
               else ["-q:a", f"{encoding.quality:g}"])
    rate = ["-ar", str(MODEL_RATE_HZ)] if encoding.encoder == "libopus" else []  # Opus codes at 48 kHz only
    with tempfile.TemporaryDirectory() as folder:   # a seekable file gets its Xing/LAME header written
        path = Path(folder) / f"encoded.{encoding.container}"
        _ffmpeg(["-f", "f32le", "-ar", str(encoding.input_rate), "-ac", str(encoding.channels), "-i", "-",
                 *rate, "-c:a", encoding.encoder, *setting, "-f", encoding.container, str(path)],
                np.ascontiguousarray(pcm.T).tobytes())
        return path.read_bytes()


# -- decoding ----------------------------------------------------------------------------------------
def _decode(data: bytes, encoding: Encoding, decoder: str) -> tuple[np.ndarray, int]:
    """Compressed bytes -> ((C, n) float32 at the stream's own rate, that rate in Hz)."""
    if decoder == "minimp3":
        import miniaudio

        decoded = miniaudio.mp3_read_f32(data)
        y = np.frombuffer(decoded.samples, dtype=np.float32).reshape(-1, decoded.nchannels)
        return np.ascontiguousarray(y.T), int(decoded.sample_rate)
    if decoder == "soundfile":
        import soundfile as sf

        y, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return np.ascontiguousarray(y.T), int(rate)
    wav = _ffmpeg(["-i", "-", "-c:a", "pcm_f32le", "-f", "wav", "-"], data)   # the format is probed
    import soundfile as sf

    y, rate = sf.read(io.BytesIO(_fix_streamed_wav(wav)), dtype="float32", always_2d=True)
    return np.ascontiguousarray(y.T), int(rate)


def _fix_streamed_wav(wav: bytes) -> bytes:
    """A WAV written to a pipe has unknown sizes in its header; fill in the real RIFF and data sizes."""
    data_at = wav.find(b"data", 12)
    if wav[:4] != b"RIFF" or data_at < 0:
        raise RuntimeError("ffmpeg did not write a WAV stream")
    fixed = bytearray(wav)
    fixed[4:8] = (len(wav) - 8).to_bytes(4, "little")
    fixed[data_at + 4: data_at + 8] = (len(wav) - data_at - 8).to_bytes(4, "little")
    return bytes(fixed)


def resample(y: np.ndarray, in_rate: int, out_rate: int, resampler: str) -> np.ndarray:
    """(C, n) float32 from `in_rate` to `out_rate` Hz with one of RESAMPLERS."""
    if in_rate == out_rate:
        return y
    if resampler.startswith("soxr_"):
        return _soxr(y, in_rate, out_rate, resampler[5:].upper())
    if resampler == "scipy":
        from scipy.signal import resample_poly

        g = gcd(in_rate, out_rate)
        return resample_poly(y, out_rate // g, in_rate // g, axis=1).astype(np.float32)
    if resampler == "src_fastest":
        import samplerate

        out = samplerate.resample(np.ascontiguousarray(y.T), out_rate / in_rate, "sinc_fastest")
        return np.ascontiguousarray(np.asarray(out, np.float32).reshape(-1, y.shape[0]).T)
    if resampler == "swr":
        channels = y.shape[0]
        raw = _ffmpeg(["-f", "f32le", "-ar", str(in_rate), "-ac", str(channels), "-i", "-", "-ar", str(out_rate),
                       "-f", "f32le", "-"], np.ascontiguousarray(y.T).tobytes())
        return np.ascontiguousarray(np.frombuffer(raw, np.float32).reshape(-1, channels).T)
    raise ValueError(f"unknown resampler {resampler!r}")


def engine_resample(y: np.ndarray, in_rate: int) -> np.ndarray:
    """(C, n) float32 at `in_rate` -> 48 kHz through gapfill's own streaming resampler (delay kept)."""
    from realtime.engine.resample import StreamingResampler

    if in_rate == MODEL_RATE_HZ:
        return y
    stage = StreamingResampler(in_rate, MODEL_RATE_HZ)
    tail = int(np.ceil(float(stage.delay_in_output_samples) * in_rate / MODEL_RATE_HZ)) + 1
    padded = np.ascontiguousarray(np.pad(y, ((0, 0), (0, tail))), dtype=np.float32)
    stage.prepare(y.shape[0], padded.shape[1])
    return np.array(stage.process(padded))


def noise_floor(channels: int, n: int, dbfs: float, color: str, rng: np.random.Generator) -> np.ndarray:
    """(channels, n) float32 noise of RMS `dbfs` dB re full scale; pink = -3 dB per octave from 20 Hz."""
    noise = rng.standard_normal((channels, n))
    if color == "pink":
        spectrum = np.fft.rfft(noise, axis=1)
        f = np.fft.rfftfreq(n, 1.0 / MODEL_RATE_HZ)
        spectrum /= np.sqrt(np.maximum(f, 20.0))
        noise = np.fft.irfft(spectrum, n, axis=1)
    noise *= 10 ** (dbfs / 20) / max(float(np.sqrt(np.mean(noise ** 2))), 1e-30)
    return noise.astype(np.float32)


def quantize(y: np.ndarray, sample_format: str, rng: np.random.Generator) -> np.ndarray:
    """What a file of `sample_format` stores of y (C, n), as float32; TPDF dither is +-1 LSB triangular."""
    if sample_format == "float":
        return y
    bits = 24 if sample_format == "s24" else 16
    scale = float(2 ** (bits - 1))
    x = y.astype(np.float64) * scale
    if sample_format == "s16_tpdf":
        x += rng.random(y.shape) - rng.random(y.shape)
    return (np.clip(np.round(x), -scale, scale - 1) / scale).astype(np.float32)


def apply_chain(data: bytes, encoding: Encoding, chain: DecodeChain, seed: int = 0) -> np.ndarray:
    """Compressed bytes -> (C, m) float32 at 48 kHz, through every step of `chain` (not yet aligned)."""
    if not chain.decodes(encoding):
        raise ValueError(f"decoder {chain.decoder} cannot read {encoding.container} ({encoding.name})")
    rng = np.random.default_rng(seed)
    y, rate = _decode(data, encoding, chain.decoder)
    if y.shape[0] != encoding.channels:        # a decoder that upmixes or downmixes
        y = y.mean(0, keepdims=True) if encoding.channels == 1 else np.repeat(y[:1], 2, 0)
    target = rate if chain.file_rate == "codec" else int(chain.file_rate)
    y = store(resample(y, rate, target, chain.resampler), chain, rng)
    return engine_resample(np.ascontiguousarray(y, dtype=np.float32), target)


def store(y: np.ndarray, chain: DecodeChain, rng: np.random.Generator) -> np.ndarray:
    """What a file written through `chain` holds of y (C, n) float32 at its own rate: the chain's gain,
    then its noise floor, then its sample format (noise and dither drawn from rng, in that order)."""
    if chain.gain_db:
        y = y * np.float32(10 ** (chain.gain_db / 20))
    if chain.noise_dbfs is not None:
        y = y + noise_floor(y.shape[0], y.shape[1], chain.noise_dbfs, chain.noise_color, rng)
    return quantize(y, chain.sample_format, rng)


def reference_for(x: np.ndarray, encoding: Encoding) -> np.ndarray:
    """The clean reference (encoding.channels, n) float32 of x (C, n): the mid for mono encodings."""
    x = np.asarray(x, np.float32)
    if encoding.channels == 1:
        return np.ascontiguousarray(x.mean(0, keepdims=True))
    return np.ascontiguousarray(x[:2] if x.shape[0] >= 2 else np.repeat(x, 2, 0))


def degrade(x: np.ndarray, encoding: Encoding, chain: DecodeChain = TRAINING_CHAIN,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Clean x (C, n) float32 at 48 kHz -> (reference, decoded, facts).

    reference and decoded are (encoding.channels, n) float32 at 48 kHz, decoded advanced by the lag
    measured against the reference; the reference carries the chain's gain too (it is what a perfect
    restorer would put out). facts: `lag_samples`
    removed and `residual_lag_samples` after alignment.
    """
    reference = reference_for(x, encoding)
    data = encode(reference, encoding)
    decoded = apply_chain(data, encoding, chain, seed)
    n = reference.shape[1]
    if decoded.shape[1] < n:
        decoded = np.pad(decoded, ((0, 0), (0, n - decoded.shape[1])))
    reference = reference * np.float32(10 ** (chain.gain_db / 20))
    lag = measure_lag(reference.mean(0), decoded.mean(0))
    decoded = advance(decoded, lag)[:, :n]
    residual = measure_lag(reference.mean(0), decoded.mean(0))
    return reference, decoded, {"lag_samples": round(float(lag), 3), "residual_lag_samples": round(float(residual), 3)}


# -- alignment ---------------------------------------------------------------------------------------
def measure_lag(ref: np.ndarray, deg: np.ndarray, max_lag: int = 8192) -> float:
    """Lag of deg behind ref in samples (positive = deg late), sub-sample by parabolic interpolation.

    Both 1-D at 48 kHz; only content below 5 kHz is compared (every codec keeps it).
    """
    n = len(ref) + len(deg)
    nfft = 1 << (n - 1).bit_length()
    spectrum_ref, spectrum_deg = np.fft.rfft(ref, nfft), np.fft.rfft(deg, nfft)
    f = np.fft.rfftfreq(nfft, 1 / MODEL_RATE_HZ)
    c = np.fft.irfft(spectrum_deg * np.conj(spectrum_ref) * (f < _LAG_BAND_HZ), nfft)
    c = np.concatenate([c[-max_lag:], c[: max_lag + 1]])
    k = int(np.argmax(c))
    frac = 0.0
    if 0 < k < len(c) - 1:
        y0, y1, y2 = c[k - 1], c[k], c[k + 1]
        den = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / den if den != 0 else 0.0
    return k - max_lag + frac


def advance(y: np.ndarray, lag: float) -> np.ndarray:
    """y (channels, n) float32 advanced by `lag` samples (fractional: band-limited, through the FFT of the
    zero-padded signal); what moves past either end is dropped and zeros come in. Negative lags delay."""
    channels, n = y.shape
    pad = int(np.ceil(abs(lag))) + 64
    size = 1 << (n + 2 * pad - 1).bit_length()
    spectrum = np.fft.rfft(np.pad(y.astype(np.float64), ((0, 0), (pad, size - n - pad))), axis=1)
    spectrum *= np.exp(2j * np.pi * np.fft.rfftfreq(size) * lag)
    moved = np.fft.irfft(spectrum, size, axis=1)[:, pad: pad + n]
    whole = int(np.floor(lag))                      # samples that came from outside y are zeros
    if whole > 0:
        moved[:, n - whole:] = 0.0
    elif whole < 0:
        moved[:, : -whole] = 0.0
    return np.ascontiguousarray(moved, dtype=np.float32)

"""The codec conditions data v2 trains on: a weighted sampler of evaluation.chains Encodings and DecodeChains.

Most draws are MP3 at 24-128 kbit/s CBR, as LAME (lameenc: it resamples low bitrates to 8-32 kHz) and
ffmpeg's libmp3lame (it keeps 44.1/48 kHz) code them, mono and joint stereo from 44.1 and 48 kHz input: the
band they keep ends anywhere from ~4 to ~17 kHz (`LAME_CUTOFF_HZ`, measured by `measure_cutoff`), and the
most common bad case, LAME 32k stereo (16 kHz, ~5.5 kHz low-pass), is drawn on its own as well. A quarter
of the draws are the other codec families of training/pairs.py (shine, AAC, Vorbis, Opus, MP2) at their
relative weights there.
Each condition's decode chain is drawn as pairs.chains_pairing draws it (decoder, stored rate, resampler,
sample format), with sometimes a level change and a noise floor. A stereo encoding is trained as its mid,
its side (the mid/side path restores both) or one channel.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from evaluation.chains import TRAINING_RESAMPLERS, DecodeChain, Encoding, _decode, encode
from training import pairs

MP3_ENCODERS = (("lameenc", 0.55), ("libmp3lame", 0.45))
MP3_BITRATES = ((24, 0.10), (32, 0.28), (40, 0.05), (48, 0.15), (56, 0.05), (64, 0.12), (80, 0.05),
                (96, 0.08), (112, 0.04), (128, 0.08))
P_LAME_32K_STEREO = 0.15       # of all draws; with the grid's own share of it, ~0.2 of all draws are LAME 32k stereo
P_MP3_GRID = 0.6               # of all draws; the other codec families get the rest (0.25)
P_STEREO_ENCODING = 0.5
INPUT_RATES = ((44_100, 0.5), (48_000, 0.5))
STEREO_SIGNALS = (("mid", 0.5), ("side", 0.3), ("left", 0.1), ("right", 0.1))
P_GAIN, GAIN_DB = 0.2, (-30.0, 0.0)
P_NOISE, NOISE_DBFS = 0.2, (-95.0, -70.0)

LAME_CUTOFF_HZ = {
    # (encoder, kbit/s, channels, input Hz): (the MP3's sample rate Hz, cutoff Hz), from `measure_cutoff`
    ("lameenc", 24, 1, 44100): (16000, 5800), ("lameenc", 32, 1, 44100): (22050, 8300),
    ("lameenc", 40, 1, 44100): (24000, 10500), ("lameenc", 48, 1, 44100): (32000, 11100),
    ("lameenc", 56, 1, 44100): (32000, 15100), ("lameenc", 64, 1, 44100): (44100, 16600),
    ("lameenc", 80, 1, 44100): (44100, 20100), ("lameenc", 96, 1, 44100): (44100, 20100),
    ("lameenc", 112, 1, 44100): (44100, 20100), ("lameenc", 128, 1, 44100): (44100, 20100),
    ("lameenc", 24, 1, 48000): (16000, 5800), ("lameenc", 32, 1, 48000): (22050, 8300),
    ("lameenc", 40, 1, 48000): (24000, 10500), ("lameenc", 48, 1, 48000): (32000, 11100),
    ("lameenc", 56, 1, 48000): (32000, 15100), ("lameenc", 64, 1, 48000): (48000, 16600),
    ("lameenc", 80, 1, 48000): (48000, 20400), ("lameenc", 96, 1, 48000): (48000, 20400),
    ("lameenc", 112, 1, 48000): (48000, 20400), ("lameenc", 128, 1, 48000): (48000, 20400),
    ("lameenc", 24, 2, 44100): (8000, 3900), ("lameenc", 32, 2, 44100): (16000, 5500),
    ("lameenc", 40, 2, 44100): (16000, 7000), ("lameenc", 48, 2, 44100): (22050, 7600),
    ("lameenc", 56, 2, 44100): (24000, 9800), ("lameenc", 64, 2, 44100): (24000, 10900),
    ("lameenc", 80, 2, 44100): (32000, 13600), ("lameenc", 96, 2, 44100): (32000, 15100),
    ("lameenc", 112, 2, 44100): (44100, 15200), ("lameenc", 128, 2, 44100): (44100, 16600),
    ("lameenc", 24, 2, 48000): (8000, 3900), ("lameenc", 32, 2, 48000): (16000, 5500),
    ("lameenc", 40, 2, 48000): (16000, 7000), ("lameenc", 48, 2, 48000): (22050, 7600),
    ("lameenc", 56, 2, 48000): (24000, 9800), ("lameenc", 64, 2, 48000): (24000, 10900),
    ("lameenc", 80, 2, 48000): (32000, 13600), ("lameenc", 96, 2, 48000): (32000, 15000),
    ("lameenc", 112, 2, 48000): (44100, 15200), ("lameenc", 128, 2, 48000): (48000, 16600),
    ("libmp3lame", 24, 1, 44100): (44100, 6400), ("libmp3lame", 32, 1, 44100): (44100, 8300),
    ("libmp3lame", 40, 1, 44100): (44100, 10400), ("libmp3lame", 48, 1, 44100): (44100, 11200),
    ("libmp3lame", 56, 1, 44100): (44100, 15200), ("libmp3lame", 64, 1, 44100): (44100, 16600),
    ("libmp3lame", 80, 1, 44100): (44100, 20100), ("libmp3lame", 96, 1, 44100): (44100, 20100),
    ("libmp3lame", 112, 1, 44100): (44100, 20200), ("libmp3lame", 128, 1, 44100): (44100, 20200),
    ("libmp3lame", 24, 1, 48000): (48000, 6100), ("libmp3lame", 32, 1, 48000): (48000, 8300),
    ("libmp3lame", 40, 1, 48000): (48000, 10500), ("libmp3lame", 48, 1, 48000): (48000, 11300),
    ("libmp3lame", 56, 1, 48000): (48000, 15000), ("libmp3lame", 64, 1, 48000): (48000, 16600),
    ("libmp3lame", 80, 1, 48000): (48000, 20400), ("libmp3lame", 96, 1, 48000): (48000, 20400),
    ("libmp3lame", 112, 1, 48000): (48000, 20400), ("libmp3lame", 128, 1, 48000): (48000, 20400),
    ("libmp3lame", 24, 2, 44100): (44100, 4200), ("libmp3lame", 32, 2, 44100): (44100, 5500),
    ("libmp3lame", 40, 2, 44100): (44100, 6900), ("libmp3lame", 48, 2, 44100): (44100, 7600),
    ("libmp3lame", 56, 2, 44100): (44100, 10200), ("libmp3lame", 64, 2, 44100): (44100, 10900),
    ("libmp3lame", 80, 2, 44100): (44100, 13100), ("libmp3lame", 96, 2, 44100): (44100, 15200),
    ("libmp3lame", 112, 2, 44100): (44100, 15200), ("libmp3lame", 128, 2, 44100): (44100, 16700),
    ("libmp3lame", 24, 2, 48000): (48000, 4400), ("libmp3lame", 32, 2, 48000): (48000, 5800),
    ("libmp3lame", 40, 2, 48000): (48000, 7500), ("libmp3lame", 48, 2, 48000): (48000, 7500),
    ("libmp3lame", 56, 2, 48000): (48000, 9800), ("libmp3lame", 64, 2, 48000): (48000, 11100),
    ("libmp3lame", 80, 2, 48000): (48000, 13300), ("libmp3lame", 96, 2, 48000): (48000, 15000),
    ("libmp3lame", 112, 2, 48000): (48000, 15800), ("libmp3lame", 128, 2, 48000): (48000, 16600),
}


@dataclass(frozen=True)
class Condition:
    """An encoding, the chain that decodes it, and the signal trained on: 'mono' for a mono encoding;
    'mid', 'side', 'left' or 'right' of a stereo one."""

    encoding: Encoding
    chain: DecodeChain
    signal: str

    @property
    def cutoff_hz(self) -> float | None:
        """Where the MP3 encoder's band ends (LAME_CUTOFF_HZ), None for other codecs and settings."""
        e = self.encoding
        found = LAME_CUTOFF_HZ.get((e.encoder, e.bitrate_kbps, e.channels, e.input_rate))
        return None if found is None else found[1]


def draw(seed: str, channels: int) -> Condition:
    """The condition for a training example named `seed` of a segment with `channels` channels (a mono
    segment is never trained as a side, which would be silent)."""
    rng = random.Random(f"condition:{seed}")
    stereo = rng.random() < P_STEREO_ENCODING
    rate = pairs._weighted(rng, INPUT_RATES)
    if rng.random() < P_LAME_32K_STEREO:
        encoding = Encoding("lameenc", 32, channels=2, input_rate=rate)
    elif rng.random() < P_MP3_GRID / (1 - P_LAME_32K_STEREO):
        encoding = Encoding(pairs._weighted(rng, MP3_ENCODERS), pairs._weighted(rng, MP3_BITRATES),
                            channels=2 if stereo else 1, input_rate=rate)
    else:
        others = [(w, e, s) for w, e, s in pairs.CODEC_MIX if e not in dict(MP3_ENCODERS)]
        total = sum(w for w, _, _ in others)
        encoder, settings = pairs._weighted(rng, [((e, s), w / total) for w, e, s in others])
        kind, value = rng.choice(settings)
        setting = {"bitrate_kbps": value} if kind == "k" else {"quality": value}
        encoding = Encoding(encoder, channels=2 if stereo else 1, input_rate=rate, **setting)
    if encoding.channels == 1:
        signal = "mono"
    else:
        signal = pairs._weighted(rng, STEREO_SIGNALS) if channels == 2 else "mid"
    decoders = [d for d in ("minimp3", "soundfile", "ffmpeg") if DecodeChain(d).decodes(encoding)]
    chain = DecodeChain(
        decoder=rng.choice(decoders), file_rate=pairs._weighted(rng, pairs.FILE_RATES),
        resampler=rng.choice(TRAINING_RESAMPLERS), sample_format=pairs._weighted(rng, pairs.SAMPLE_FORMATS),
        gain_db=round(rng.uniform(*GAIN_DB), 1) if rng.random() < P_GAIN else 0.0,
        noise_dbfs=round(rng.uniform(*NOISE_DBFS), 1) if rng.random() < P_NOISE else None,
        noise_color=rng.choice(["white", "pink"]))
    return Condition(encoding, chain, signal)


def measure_cutoff(encoding: Encoding, seconds: float = 3.0) -> tuple[int, float]:
    """(the MP3's sample rate Hz, cutoff Hz) of an MP3 encoding: white noise at -20 dBFS RMS (independent
    channels) encoded and decoded by minimp3; the cutoff is the highest frequency where the decoded
    spectrum (first channel, 9-bin smoothing) is within 20 dB of its 0.5-2 kHz median."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((encoding.channels, int(seconds * 48_000))) * 0.1).astype(np.float32)
    y, rate = _decode(encode(x, encoding), encoding, "minimp3")
    n = 4096
    frames = np.lib.stride_tricks.sliding_window_view(y[0], n)[:: n // 2]
    power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2, axis=0)
    power = np.convolve(power, np.ones(9) / 9, mode="same")
    f = np.fft.rfftfreq(n, 1 / rate)
    reference = np.median(power[(f > 500) & (f < 2000)])
    return rate, float(f[np.nonzero(power > reference * 10 ** (-20 / 10))[0].max()])


def cutoff_table() -> str:
    """Markdown table of measure_cutoff for every key of LAME_CUTOFF_HZ (the MP3's rate / cutoff, kHz)."""
    bitrates = [b for b, _ in MP3_BITRATES]
    lines = ["| encoder | channels | input | " + " | ".join(f"{b}k" for b in bitrates) + " |",
             "|---" * (3 + len(bitrates)) + "|"]
    for encoder, _ in MP3_ENCODERS:
        for channels in (1, 2):
            for rate, _ in INPUT_RATES:
                cells = []
                for b in bitrates:
                    out_rate, cutoff = measure_cutoff(Encoding(encoder, b, channels=channels, input_rate=rate))
                    cells.append(f"{out_rate / 1000:g} / {cutoff / 1000:.1f}")
                lines.append(f"| {encoder} | {'mono' if channels == 1 else 'joint stereo'} | {rate / 1000:g} kHz | "
                             + " | ".join(cells) + " |")
    return "\n".join(lines)

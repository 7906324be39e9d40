"""How a file's audio was coded, as the file tells: a lossy codec and its bit rate, so that the codec gate can
take a cliff for the codec's band limit where the coding leaves no doubt, and for a source's own where the
codec's lies higher (`gate.coded_input: auto`).

The bit rate is the audio stream's own where FFmpeg reads it from the container or the stream, else the
file's size, less a leading ID3v2 tag (cover art), over its duration: for the MP3, Ogg Vorbis and Opus files
libsndfile reads, whose frame headers and pages add under 2 %.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from realtime.engine.restorer import Restorer
    from realtime.frontends.audiofile import AudioSource

LOSSY_CODECS = frozenset({"mp1", "mp2", "mp3", "aac", "vorbis", "opus", "wmav1", "wmav2", "ac3", "eac3"})
"""Codec names (FFmpeg's; libsndfile's subtypes mapped to them) of lossy codecs, whose coding a file reports."""
LOW_RATE_CODECS = frozenset({"mp3"})
LOW_RATE_KBPS = 32.0
"""A file of a LOW_RATE_CODECS codec at no more than this many kbit/s in all is low-rate: its encoder's low-pass
(LAME's 8.3 kHz at 32 kbit/s mono, 5.5 kHz stereo) is the cliff the gate finds, whatever the source was.
Measured with the evidence waived (README, Results, "Coded input"): at LAME 32k mono 36 more of 138
validation music clips restored, ViSQOL +0.83 on them; at 48-64 kbit/s, AAC 32k and MP2 64k more clean
band-limited sources made worse (8-16 of 60) for 0-5 more full-band ones restored, and at 96-128 kbit/s nearly
all of them."""
HIGH_RATE_CODECS = frozenset({"mp3"})
HIGH_RATE_KBPS = 96.0
"""A file of a HIGH_RATE_CODECS codec at this many kbit/s or more is high-rate: its encoder's low-pass lies at
15 kHz or above, over every cliff the gate looks for, so a cliff it finds is the source's own and counts as no
band limit. With the shipped model at LAME 96 and 128 kbit/s such cliffs (10.5-12.3 kHz) engaged the gate on 5
of 120 band-limited sources, each made worse, and on no full-band one (README, Results, "Coded input"). The
MP3 rate under it, 80 kbit/s, stays under it with ESTIMATE_TOLERANCE."""
ESTIMATE_TOLERANCE = 1.15
"""A bit rate estimated from the file's size may exceed the nominal one by this factor (frame headers, padding,
the VBR header frame, an encoder's priming: 2-3 % measured), under the MP3 step from 32 to 40 kbit/s."""
ID3V2_HEADER_BYTES = 10


@dataclass(frozen=True)
class Coding:
    """A file's lossy coding: `codec` (FFmpeg's name), `kbps` (average bit rate of the audio, kbit/s) and
    `channels`."""

    codec: str
    kbps: float
    channels: int

    @property
    def low_rate(self) -> bool:
        """Whether it is of a LOW_RATE_CODECS codec at no more than LOW_RATE_KBPS (ESTIMATE_TOLERANCE over it)."""
        return self.codec in LOW_RATE_CODECS and self.kbps <= LOW_RATE_KBPS * ESTIMATE_TOLERANCE

    @property
    def high_rate(self) -> bool:
        """Whether it is of a HIGH_RATE_CODECS codec at HIGH_RATE_KBPS or more."""
        return self.codec in HIGH_RATE_CODECS and self.kbps >= HIGH_RATE_KBPS

    def to_json(self) -> dict[str, Any]:
        """The `--stats-json` record."""
        return {"codec": self.codec, "kbps": round(self.kbps, 1), "channels": self.channels,
                "low_rate": self.low_rate, "high_rate": self.high_rate}


def file_coding(path: str, source: AudioSource) -> Coding | None:
    """The coding of the open `source` read from `path`, or None for lossless and PCM audio (and for a lossy
    stream whose duration is unknown)."""
    if source.codec not in LOSSY_CODECS:
        return None
    bit_rate = source.bit_rate
    if not bit_rate:
        seconds = source.frames / source.samplerate
        if seconds <= 0:
            return None
        with open(path, "rb") as file:
            tag = id3v2_size(file.read(ID3V2_HEADER_BYTES))
        bit_rate = 8.0 * (os.path.getsize(path) - tag) / seconds
    return Coding(source.codec, bit_rate / 1000.0, source.channels)


def tell_restorer(restorer: Restorer, coding: Coding | None) -> None:
    """Tell `restorer`'s gate, for the stream to come, what a file of `coding` (None: not lossy, or unknown)
    says: low-rate (its cliff is the codec's), high-rate (its cliff is the source's own) or neither."""
    restorer.set_coded_input(coding is not None and coding.low_rate)
    restorer.set_high_rate_input(coding is not None and coding.high_rate)


def id3v2_size(header: bytes) -> int:
    """Bytes of the ID3v2 tag that a file starting with `header` (its first 10 bytes) begins with, header and
    footer included; 0 without one."""
    if len(header) < ID3V2_HEADER_BYTES or header[:3] != b"ID3" or any(b & 0x80 for b in header[6:10]):
        return 0
    size = (header[6] << 21) | (header[7] << 14) | (header[8] << 7) | header[9]   # synchsafe
    footer = ID3V2_HEADER_BYTES if header[5] & 0x10 else 0
    return ID3V2_HEADER_BYTES + size + footer

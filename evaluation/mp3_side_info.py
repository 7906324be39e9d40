"""The side information of an MPEG audio Layer III stream, per granule and channel.

An MP3 encoder decides per granule (576 samples at the stream's rate) how many bits to spend and at which
quantiser step (`global_gain`), from a psychoacoustic model that sees the whole band before the low-pass;
the decoded audio keeps only what lies under it. `side_info(data)` reads those decisions from the stream's
frame headers and side info alone (no Huffman decoding): MPEG-1 (two granules per frame) and MPEG-2 / 2.5
(one), mono, stereo, joint and dual channel, with or without CRC; an ID3v2 tag in front and a Xing / Info /
VBRI frame (an encoder's summary, no audio) are skipped.

Granule g of the stream (summary frames left out) holds the encoder's decisions about granule g of its input,
that is of the decoded audio aligned to the clean: the bits' course correlates best with the clean course above
the cutoff at that lag on most test mixes, for LAME and for ffmpeg's libmp3lame alike (measured in session 24,
training/v2/campaign/README.md, "What the MP3 stream itself says about the course").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.frontends.coding import ID3V2_HEADER_BYTES, id3v2_size

GRANULE_SAMPLES = 576
_BITRATES_KBPS = {False: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
                  True: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_RATES_HZ = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_SUMMARY_TAGS = (b"Xing", b"Info", b"VBRI")


@dataclass(frozen=True)
class SideInfo:
    """Per granule g and channel c of a stream (granules in stream order, summary frames left out).

    part2_3_bits (G, C) int: bits of scale factors and Huffman data; global_gain (G, C) int: the quantiser
    step, 1.5 dB per unit; block_type (G, C) int: 0 long, 1 start, 2 short, 3 stop; mid_side (G,) bool: the
    frame codes its channels as mid and side.
    """

    sample_rate: int
    part2_3_bits: np.ndarray
    global_gain: np.ndarray
    block_type: np.ndarray
    mid_side: np.ndarray

    @property
    def granules(self) -> int:
        return self.part2_3_bits.shape[0]


@dataclass(frozen=True)
class _Header:
    lsf: bool            # MPEG-2 / 2.5: one granule per frame, shorter side info
    sample_rate: int
    size: int            # bytes of the whole frame
    channels: int
    mid_side: bool
    crc: bool

    @property
    def side_info_end(self) -> int:
        """Bytes from the frame's start to the end of its side info."""
        side = (9 if self.channels == 1 else 17) if self.lsf else (17 if self.channels == 1 else 32)
        return 4 + (2 if self.crc else 0) + side


def _header(data: bytes, at: int) -> _Header | None:
    """The Layer III frame header at byte `at`, or None where none starts there."""
    if at + 4 > len(data) or data[at] != 0xFF or data[at + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (data[at + 1] >> 3) & 3, (data[at + 1] >> 1) & 3
    bitrate_index, rate_index = data[at + 2] >> 4, (data[at + 2] >> 2) & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    lsf = version != 3
    rate = _RATES_HZ[version][rate_index]
    bitrate = _BITRATES_KBPS[lsf][bitrate_index] * 1000
    size = (72 if lsf else 144) * bitrate // rate + ((data[at + 2] >> 1) & 1)
    mode, extension = data[at + 3] >> 6, (data[at + 3] >> 4) & 3
    return _Header(lsf, rate, size, 1 if mode == 3 else 2, mode == 1 and bool(extension & 2),
                   not data[at + 1] & 1)


class _BitReader:
    def __init__(self, data: bytes, byte: int) -> None:
        self.data, self.bit = data, byte * 8

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | ((self.data[self.bit >> 3] >> (7 - (self.bit & 7))) & 1)
            self.bit += 1
        return value


def _granules(data: bytes, at: int, header: _Header) -> list[list[tuple[int, int, int]]]:
    """(part2_3_bits, global_gain, block_type) per granule and channel of the frame at `at`."""
    bits = _BitReader(data, at + 4 + (2 if header.crc else 0))
    channels = header.channels
    if header.lsf:
        bits.read(8 + channels)                        # main_data_begin, private bits
    else:
        bits.read(9 + (5 if channels == 1 else 3) + 4 * channels)   # main_data_begin, private, scfsi
    granules = []
    for _ in range(1 if header.lsf else 2):
        per_channel = []
        for _ in range(channels):
            part2_3 = bits.read(12)
            bits.read(9)                               # big_values
            gain = bits.read(8)
            bits.read(9 if header.lsf else 4)          # scalefac_compress
            block_type = 0
            if bits.read(1):                           # window switching: block type, mixed, 2 tables, 3 gains
                block_type = bits.read(2)
                bits.read(1 + 10 + 9)
            else:                                      # 3 tables, region counts
                bits.read(15 + 7)
            bits.read(2 if header.lsf else 3)          # (preflag,) scalefac_scale, count1table_select
            per_channel.append((part2_3, gain, block_type))
        granules.append(per_channel)
    return granules


def side_info(data: bytes) -> SideInfo:
    """Every audio frame's side info of an MP3 stream's bytes (module doc). Raises ValueError when the bytes
    hold no Layer III frame, or frames of more than one sample rate or channel count."""
    at, rows, mid_side, first = id3v2_size(data[:ID3V2_HEADER_BYTES]), [], [], None
    while at + 4 <= len(data):
        header = _header(data, at)
        follows = header is not None and (at + header.size + 4 > len(data) or _header(data, at + header.size))
        if header is None or header.size < 4 or not follows:
            at += 1                                    # not a frame, or a false sync inside one
            continue
        if first is None:
            first = header
        elif (header.sample_rate, header.channels) != (first.sample_rate, first.channels):
            raise ValueError("the stream changes its sample rate or channel count")
        if at + header.side_info_end > len(data):    # cut inside its side info: the stream ends here
            break
        frame = data[at:at + header.size]
        if not any(tag in frame[:64] for tag in _SUMMARY_TAGS):
            for granule in _granules(data, at, header):
                rows.append(granule)
                mid_side.append(header.mid_side)
        at += header.size
    if first is None or not rows:
        raise ValueError("no MPEG audio Layer III frame found")
    table = np.asarray(rows, np.int64)                 # (G, C, 3)
    return SideInfo(first.sample_rate, table[:, :, 0], table[:, :, 1], table[:, :, 2],
                    np.asarray(mid_side, bool))

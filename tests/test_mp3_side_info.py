"""MP3 side info (evaluation/mp3_side_info.py): granules, channels and rates of real LAME and ffmpeg streams,
the bits an encoder spends following the signal, and streams with tags, cuts and no frames at all."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.chains import Encoding, encode
from evaluation.mp3_side_info import GRANULE_SAMPLES, side_info

SECONDS = 2.0


def noise_then_silence(channels: int) -> np.ndarray:
    """(channels, 2 s) at 48 kHz: white noise for the first second, digital silence for the second."""
    x = np.random.default_rng(1).normal(0.0, 0.1, (channels, int(SECONDS * 48_000))).astype(np.float32)
    x[:, 48_000:] = 0.0
    return x


@pytest.mark.parametrize("encoding, rate, mid_side", [
    (Encoding("lameenc", 32, channels=1), 22_050, False),          # MPEG-2: one granule per frame
    (Encoding("lameenc", 32, channels=2), 16_000, True),           # MPEG-2, joint stereo
    (Encoding("libmp3lame", 128, channels=2), 48_000, True),       # MPEG-1, an ID3 tag and an Info frame
])
def test_side_info_of_real_streams_has_a_granule_per_576_samples_and_bits_where_the_signal_is(
        encoding, rate, mid_side):
    x = noise_then_silence(encoding.channels)
    info = side_info(encode(x, encoding))
    assert info.sample_rate == rate
    assert info.part2_3_bits.shape == info.global_gain.shape == info.block_type.shape
    assert info.part2_3_bits.shape[1] == encoding.channels and info.mid_side.shape == (info.granules,)
    audio_granules = SECONDS * rate / GRANULE_SAMPLES
    assert audio_granules <= info.granules <= audio_granules + 6       # the encoder's delay and padding
    assert set(np.unique(info.block_type)) <= {0, 1, 2, 3}
    assert np.all((info.global_gain >= 0) & (info.global_gain <= 255))
    main_data_bits = encoding.bitrate_kbps * 1000 * GRANULE_SAMPLES / rate
    assert info.part2_3_bits.sum(1).mean() <= 1.05 * main_data_bits   # what the bit rate allows, on average
    half = info.granules // 2
    loud, quiet = info.part2_3_bits[3:half - 3].mean(), info.part2_3_bits[half + 3:-3].mean()
    assert loud > 0.5 * main_data_bits / encoding.channels and quiet < 0.1 * loud
    assert info.mid_side[3:half - 3].mean() > 0.5 if mid_side else not info.mid_side.any()


def test_side_info_skips_a_tag_in_front_and_stops_where_a_stream_is_cut():
    data = encode(noise_then_silence(2)[:, :24_000], Encoding("lameenc", 64, channels=2))
    whole = side_info(data)
    body = b"\xff\xfb\x90\x00" * 8                                     # frame-like bytes inside the tag
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 0, len(body)]) + body
    tagged = side_info(tag + data)
    np.testing.assert_array_equal(tagged.part2_3_bits, whole.part2_3_bits)
    np.testing.assert_array_equal(tagged.global_gain, whole.global_gain)
    for cut in (len(data) - 5, len(data) // 2 + 3):                    # mid-frame: the frames before it
        part = side_info(data[:cut])
        assert 0 < part.granules <= whole.granules
        np.testing.assert_array_equal(part.part2_3_bits, whole.part2_3_bits[:part.granules])


def test_side_info_refuses_bytes_without_a_frame():
    with pytest.raises(ValueError, match="no MPEG audio Layer III frame"):
        side_info(np.random.default_rng(2).integers(0, 256, 5000, dtype=np.uint8).tobytes().replace(b"\xff", b"\x00"))
    with pytest.raises(ValueError, match="no MPEG audio Layer III frame"):
        side_info(b"")

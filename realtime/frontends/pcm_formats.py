"""The raw PCM sample formats of the pipe front end (`gapfill stream --format`), named as ffmpeg's `-f`.

Apart from realtime.frontends.pipe, which needs numpy, so that the command line can list them without it.
"""

PCM_FORMATS = {"f32le": 4, "s16le": 2, "s24le": 3}
"""Format name -> bytes per sample (little-endian; f32 float, s16/s24 signed integers)."""

"""gapfill: real-time restoration of low-bitrate (MP3) audio.

Signal path, one module each, in order: config -> resample -> fft -> stft -> model -> gate -> phase
-> restorer; front ends (audiofile, pipe, live, cli) drive a `Restorer`.
"""

__version__ = "0.1.0"

"""Side-by-side spectrograms as a PNG, for `gapfill spectrogram` (realtime/cli/spectrogram.py) and benchmarks.

Every panel is the mono mix of one file. All panels share one colour scale (dB relative to the loudest
time-frequency bin of all panels, `range_db` below it shown) and one frequency axis (0 Hz to the highest
Nyquist frequency), so a band that is missing in one panel is visibly missing. The STFT window is about
43 ms (2048 samples at 48 kHz, a power of two at any rate) with a quarter-window hop.

matplotlib is an optional extra (`pip install 'gapfill[plot]'`); without it `render` raises a one-line
GapfillError. The picture is written under a temporary name beside OUT and renamed when complete
(`realtime.atomic`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from realtime.atomic import atomic_write
from realtime.errors import GapfillError

if TYPE_CHECKING:  # numpy and the engine's window are imported when a picture is drawn, not for --help
    import numpy as np

DEFAULT_RANGE_DB = 80.0
MAX_DEFAULT_SECONDS = 60.0  # without --duration, longer files are cut to this
WINDOW_S = 0.043
COLOUR_MAP = "magma"
PLOT_EXTRA_HINT = "pip install 'gapfill[plot]'"


@dataclass
class Panel:
    """One spectrogram: a title, mono samples (n,) and their sample rate in Hz."""

    label: str
    samples: np.ndarray
    sample_rate: int


def spectrogram_db(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrogram of mono `samples` (n,): (frame times s, bin frequencies Hz, power dB (bins, frames)).

    Periodic Hann window of the power of two nearest WINDOW_S seconds, hop a quarter of it; power in dB
    of the window-normalised spectrum (a full-scale sine reads about 0 dB), floored at -200 dB.
    """
    import numpy as np

    from realtime.engine.windows import analysis_window

    fft_size = 1 << int(round(np.log2(WINDOW_S * sample_rate)))
    hop = fft_size // 4
    x = np.asarray(samples, np.float64)
    x = np.concatenate([np.zeros(fft_size // 2), x, np.zeros(fft_size // 2 + hop)])
    frames = max(1, (len(x) - fft_size) // hop + 1)
    window = analysis_window(fft_size)
    index = np.arange(frames)[:, None] * hop + np.arange(fft_size)[None, :]
    spectra = np.fft.rfft(x[index] * window, axis=1) * (2.0 / window.sum())
    power_db = 10.0 * np.log10(np.maximum(np.abs(spectra.T) ** 2, 1e-20))
    times = np.arange(frames) * hop / sample_rate
    freqs = np.fft.rfftfreq(fft_size, 1.0 / sample_rate)
    return times, freqs, power_db


def matplotlib_figure() -> Any:
    """matplotlib's `Figure` class, or a one-line GapfillError when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise GapfillError(f"spectrograms need matplotlib, which is not installed: {PLOT_EXTRA_HINT}") from None
    return Figure


def render(rows: Sequence[Sequence[Panel]], out_path: str | Path, range_db: float = DEFAULT_RANGE_DB,
           max_freq_hz: float | None = None, row_titles: Sequence[str] | None = None,
           title: str | None = None, per_row: bool = False) -> None:
    """Write a grid of spectrograms (rows of panels) as a PNG to `out_path`.

    Colours: dB relative to the loudest bin of all panels, or with per_row of the row's panels (so a
    quieter clip in another row is not drawn darker); the same range_db and colour map everywhere.
    """
    figure_class = matplotlib_figure()
    computed = [[(panel, *spectrogram_db(panel.samples, panel.sample_rate)) for panel in row] for row in rows]
    row_tops = [max(float(power.max()) for *_, power in row) for row in computed]
    if not per_row:
        row_tops = [max(row_tops)] * len(row_tops)
    nyquist = max(panel.sample_rate / 2 for row in rows for panel in row)
    top_hz = min(max_freq_hz or nyquist, nyquist)
    columns = max(len(row) for row in rows)
    figure = figure_class(figsize=(3.6 * columns + 1.0, 2.8 * len(rows) + (0.4 if title else 0.0)),
                          layout="constrained", dpi=110)
    axes = figure.subplots(len(rows), columns, squeeze=False, sharey=True)
    image = None
    for r, row in enumerate(computed):
        for c in range(columns):
            ax = axes[r][c]
            if c >= len(row):
                ax.set_axis_off()
                continue
            panel, times, freqs, power = row[c]
            duration = len(panel.samples) / panel.sample_rate
            image = ax.imshow(power - row_tops[r], origin="lower", aspect="auto", cmap=COLOUR_MAP,
                              interpolation="nearest", vmin=-range_db, vmax=0.0,
                              extent=(0.0, max(duration, 1e-3), 0.0, freqs[-1] / 1000.0))
            ax.set_ylim(0.0, top_hz / 1000.0)
            ax.set_title(panel.label, fontsize=10)
            if r == len(rows) - 1:
                ax.set_xlabel("time (s)")
            if c == 0:
                ax.set_ylabel(("" if not row_titles else f"{row_titles[r]}\n") + "frequency (kHz)")
    if image is not None:
        reference = "its row" if per_row and len(rows) > 1 else "all panels"
        figure.colorbar(image, ax=axes, label=f"dB (0 = loudest bin of {reference})", shrink=0.9)
    if title:
        figure.suptitle(title)
    _save(figure, Path(out_path))


def _save(figure: Any, out_path: Path) -> None:
    """Save as PNG under a hidden temporary name beside out_path, then rename over it."""
    try:
        with atomic_write(out_path) as temp:
            figure.savefig(temp, format="png")
    except OSError as exc:
        raise GapfillError(f"cannot write '{out_path}': {(exc.strerror or str(exc)).lower()}") from None


def read_mono(path: str, start_s: float = 0.0, duration_s: float | None = None) -> tuple[np.ndarray, int, bool]:
    """Mono mix of `path` from start_s for duration_s (None: to the end, at most MAX_DEFAULT_SECONDS):
    ((n,) float32, sample rate Hz, whether the default limit cut it)."""
    import soundfile as sf

    from realtime.frontends.audiofile import open_input

    with open_input(path) as source:
        rate = source.samplerate
        start = int(round(start_s * rate))
        if source.frames > 0 and start >= source.frames and source.format != "MP3":
            raise GapfillError(f"cannot read '{path}': --start {start_s:g} s is past its end")
        limit = duration_s if duration_s is not None else MAX_DEFAULT_SECONDS
        frames = int(round(limit * rate))
        try:
            if start:
                source.seek(start)
            data = source.read(frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise GapfillError(f"cannot read '{path}': {str(exc).strip().rstrip('.')}") from None
        cut = duration_s is None and source.frames > start + frames
    if data.shape[0] == 0:
        raise GapfillError(f"cannot read '{path}': no audio from {start_s:g} s on")
    return data.mean(axis=1), rate, cut

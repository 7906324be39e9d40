"""Front ends: what feeds a `Restorer` and takes its output (files, raw PCM pipes, sound cards) and the
spectrogram plots; they use the engine's public interface only and never parse arguments (realtime/cli)."""

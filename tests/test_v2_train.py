"""Model v2's training loop on tiny synthetic pair caches: it steps, checkpoints, resumes, and trains on
several caches (pair rounds) together."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.pairs import REFERENCE  # noqa: E402
from training.v2.__main__ import main  # noqa: E402
from training.v2.model import BandNet, BandNetConfig  # noqa: E402
from training.v2.train import PairCache  # noqa: E402


def _pair_cache(root: Path, seed: int = 0) -> Path:
    """Two pairs (clean harmonic tone + noise; decoded: low-passed at 8 kHz with holes), train and val."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i, split in enumerate(("train", "val")):
        n = 48_000
        t = np.arange(n) / 48_000
        x = sum(np.sin(2 * np.pi * 220 * (i + 1) * k * t) / k for k in range(1, 60)) * 0.05
        x = x + 0.003 * rng.standard_normal(n)
        spectrum = np.fft.rfft(x)
        f = np.fft.rfftfreq(n, 1 / 48_000)
        y = np.fft.irfft(spectrum * (f < 8000) * (rng.random(len(f)) > 0.2), n)
        file = f"{split}.npy"
        np.save(root / file, np.stack([x, y])[:, None, :].astype(np.float32))
        rows.append({"file": file, "split": split, "samples": n, "channels": 1, "codec": REFERENCE.name,
                     "mix": "lame", "chain": "minimp3_codec_float", "kind": "music"})
    (root / "manifest.json").write_text(json.dumps({"pairs": rows}))
    return root


def _tiny_run(run: Path, data: Path) -> list[str]:
    """`python -m training.v2` arguments of a tiny training run of `data` into `run` (add --steps)."""
    return ["train", "--run", str(run), "--data", str(data), "--batch", "2", "--frames", "24", "--hidden", "16"]


def test_train_steps_checkpoints_and_resumes(tmp_path: Path) -> None:
    data = _pair_cache(tmp_path)
    run = tmp_path / "run"
    args = _tiny_run(run, data)
    assert main(args + ["--steps", "2", "--cpu-hours", "1"]) == 0
    first = torch.load(run / "last.pt", weights_only=False)
    assert first["state"]["step"] == 2 and first["state"]["cpu_s"] > 0
    assert first["state"]["audio_s"] == pytest.approx(2 * 2 * 24 * 128 / 48_000)
    assert main(["train", "--run", str(run), "--resume", "--steps", "3"]) == 0   # its own budget, data, size
    second = torch.load(run / "last.pt", weights_only=False)
    assert second["state"]["step"] == 3 and second["state"]["sessions"] == 2
    assert second["state"]["cpu_s"] > first["state"]["cpu_s"] and second["config"]["hidden"] == 16
    assert second["budget_cpu_s"] == 3600.0
    changed = [k for k in first["model"] if not torch.equal(first["model"][k], second["model"][k])]
    assert changed                                                            # the resumed step trained
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 3 and np.isfinite(log[-1]["val_reference_lsd"])


def test_the_envelope_term_is_recorded_kept_on_resume_and_logged_both_ways(tmp_path: Path) -> None:
    data = _pair_cache(tmp_path)
    run = tmp_path / "run"
    assert main(_tiny_run(run, data) + ["--steps", "1", "--cpu-hours", "1", "--band-term", "audible"]) == 0
    assert main(["train", "--run", str(run), "--resume", "--steps", "2"]) == 0
    state = torch.load(run / "last.pt", weights_only=False)["state"]
    assert state["band_term"] == "audible" and state["step"] == 2
    record = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert record["val_reference_audible"] != record["val_reference_band"]
    assert record["val_reference_total"] == pytest.approx(                  # the total holds the audible term
        record["val_reference_audible"] + 0.5 * record["val_reference_bin"]
        + 0.2 * record["val_reference_confidence"], abs=2e-4)
    with pytest.raises(SystemExit):
        main(_tiny_run(tmp_path / "other", data) + ["--steps", "1", "--band-term", "loud"])


def test_the_patch_and_over_weights_are_recorded_kept_on_resume_and_in_the_total(tmp_path: Path) -> None:
    data = _pair_cache(tmp_path)
    run = tmp_path / "run"
    args = _tiny_run(run, data)
    args[args.index("--frames") + 1] = "48"                                  # longer than a ViSQOL window
    assert main(args + ["--steps", "1", "--cpu-hours", "1", "--patch-weight", "2", "--over-weight", "1.5"]) == 0
    assert main(["train", "--run", str(run), "--resume", "--steps", "2"]) == 0
    state = torch.load(run / "last.pt", weights_only=False)["state"]
    assert state["patch_weight"] == 2.0 and state["over_weight"] == 1.5 and state["step"] == 2
    record = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert record["val_reference_patch"] > 0.0 and record["val_reference_over"] > 0.0
    assert record["val_reference_total"] == pytest.approx(
        record["val_reference_band"] + 0.5 * record["val_reference_bin"] + 0.2 * record["val_reference_confidence"]
        + 2.0 * record["val_reference_patch"] + 0.5 * record["val_reference_over"], abs=3e-4)


def test_a_resumed_run_takes_new_crops_and_a_restarted_schedule_and_validates_as_before(tmp_path: Path) -> None:
    data = _pair_cache(tmp_path)
    run = tmp_path / "run"
    assert main(_tiny_run(run, data) + ["--steps", "1", "--cpu-hours", "1"]) == 0
    first = torch.load(run / "last.pt", weights_only=False)["state"]
    assert "schedule" not in first
    assert main(["train", "--run", str(run), "--resume", "--steps", "2", "--cpu-hours", "2", "--batch", "1",
                 "--frames", "48", "--restart-lr", "3e-4"]) == 0
    state = torch.load(run / "last.pt", weights_only=False)["state"]
    assert (state["batch"], state["frames"], state["val_frames"]) == (1, 48, 24)
    assert state["schedule"] == {"cpu_s": pytest.approx(first["cpu_s"]), "lr": 3e-4}
    assert state["audio_s"] - first["audio_s"] == pytest.approx(48 * 128 / 48_000)   # one crop of 48 frames
    with pytest.raises(SystemExit, match="restart"):
        main(_tiny_run(tmp_path / "new", data) + ["--steps", "1", "--restart-lr", "3e-4"])


def test_the_learning_rate_falls_from_its_peak_to_the_floor_and_restarts_where_told() -> None:
    from training.train import LR, LR_FLOOR, learning_rate
    assert learning_rate(0.0, 100.0) == pytest.approx(LR)
    assert learning_rate(50.0, 100.0) == pytest.approx((LR + LR_FLOOR) / 2)
    assert learning_rate(100.0, 100.0) == learning_rate(150.0, 100.0) == pytest.approx(LR_FLOOR)
    restart = {"cpu_s": 80.0, "lr": 4e-4}
    assert learning_rate(80.0, 100.0, restart) == pytest.approx(4e-4)
    assert learning_rate(90.0, 100.0, restart) == pytest.approx((4e-4 + LR_FLOOR) / 2)
    assert learning_rate(100.0, 100.0, restart) == pytest.approx(LR_FLOOR)


def test_resume_without_a_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="nothing to resume"):
        main(["train", "--run", str(tmp_path / "none"), "--resume"])


def test_several_caches_are_cropped_together_and_a_resumed_run_switches_to_them(tmp_path: Path) -> None:
    first, second = _pair_cache(tmp_path / "r0"), _pair_cache(tmp_path / "r1", seed=1)
    both = PairCache([first, second], "train", 0)
    assert [str(f) for f in both.files] == [str(first / "train.npy"), str(second / "train.npy")]
    assert both.p.tolist() == [0.5, 0.5]
    picked = {id(both._array(i)) for i in range(2)}
    assert len(picked) == 2 and not np.array_equal(both._array(0), both._array(1))   # each from its own folder
    run = tmp_path / "run"
    args = ["train", "--run", str(run), "--batch", "2", "--frames", "24", "--hidden", "16"]
    assert main(args + ["--data", str(first), "--steps", "1", "--cpu-hours", "1"]) == 0
    assert main(["train", "--run", str(run), "--resume", "--steps", "2", "--data", str(first), str(second)]) == 0
    state = torch.load(run / "last.pt", weights_only=False)["state"]
    assert state["data"] == [str(first), str(second)] and state["step"] == 2
    sessions = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if "session" in line]
    assert sessions[-1]["data"] == [str(first), str(second)]


def test_band_oracles_leave_the_clean_signal_alone_and_beat_the_decoded_one(tmp_path: Path) -> None:
    from training.v2.floor import floor_table, oracle_estimates

    clean = torch.rand(2, 10, 513) + 0.01
    for estimate in oracle_estimates(clean, clean, 16).values():
        torch.testing.assert_close(estimate, clean, rtol=1e-5, atol=0)
    rows = floor_table(_pair_cache(tmp_path), (8, 32))
    reference = [r for r in rows if r["set"] == "reference"]
    assert [r["bands"] for r in reference] == [8, 32]
    assert all(r["oracle_fill"] < r["decoded"] and r["oracle_gain"] < r["decoded"] for r in reference)


def test_band_levels_tell_where_the_decoded_input_lacks_level(tmp_path: Path) -> None:
    from training.v2.floor import band_levels

    data, run = _pair_cache(tmp_path / "data"), tmp_path / "run"
    assert main(_tiny_run(run, data) + ["--steps", "1", "--cpu-hours", "1"]) == 0
    rows = band_levels(data, run / "last.pt")
    assert [r["band"] for r in rows] == list(range(32))
    below = [r["decoded_median_db"] for r in rows if r["from_hz"] < 6000]
    above = [r["decoded_median_db"] for r in rows if r["from_hz"] > 9000]
    assert abs(float(np.median(below))) < 3 and max(above) < -20   # the decoded side is cut at 8 kHz


def test_the_weight_average_follows_the_steps_resumes_and_is_what_export_ships(tmp_path: Path) -> None:
    from training.v2.export import load_checkpoint
    from training.v2.train import AVERAGE_DECAY

    data = _pair_cache(tmp_path)
    run = tmp_path / "run"
    assert main(_tiny_run(run, data) + ["--steps", "1", "--cpu-hours", "1"]) == 0
    ck = torch.load(run / "last.pt", weights_only=False)
    torch.manual_seed(0)                                   # the initial weights the run started from
    start = BandNet(BandNetConfig(hidden=16)).state_dict()
    for name, average in ck["average"].items():           # one step: start + (1 - decay) (weights - start)
        expected = start[name] + (1 - AVERAGE_DECAY) * (ck["model"][name] - start[name])
        torch.testing.assert_close(average, expected, rtol=1e-5, atol=1e-7)
    assert any(not torch.equal(ck["average"][k], ck["model"][k]) for k in ck["model"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert np.isfinite(log[-1]["average_reference_lsd"]) and np.isfinite(log[-1]["val_reference_lsd"])
    assert 0.0 <= log[-1]["average_cliffs_auc_share"] <= 1.0 and 0.0 <= log[-1]["average_cliffs_auc_mean"] <= 1.0

    net, _ = load_checkpoint(run / "last.pt")             # what export ships: the average
    assert all(torch.equal(p, ck["average"][n]) for n, p in net.named_parameters())
    onnx_path = tmp_path / "v2.onnx"                       # with the gate calibration chosen for it
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--out", str(onnx_path),
                 "--damage-share", "0.03", "--codec-share-top-hz", "16000"]) == 0
    from realtime.engine.config import load_config
    from realtime.engine.model_files import GATE_CALIBRATION
    from training.v2.export import SHIPPED_GATE_CALIBRATION
    gate = load_config(None, {"model": {"path": str(onnx_path)}}).gate
    assert gate["damage_share"] == 0.03 and gate["codec_share"] == GATE_CALIBRATION["codec_share"]
    assert gate["codec_share_top_hz"] == 16000.0
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--out", str(onnx_path),
                 "--shipped-gate", "--damage-share", "0.03"]) == 0      # the shipped calibration, one value given
    gate = load_config(None, {"model": {"path": str(onnx_path)}}).gate
    assert gate["damage_share"] == 0.03 and gate["codec_share"] == SHIPPED_GATE_CALIBRATION["codec_share"]
    assert gate["codec_share_top_hz"] == SHIPPED_GATE_CALIBRATION["codec_share_top_hz"]
    last_step, _ = load_checkpoint(run / "last.pt", averaged=False)
    assert all(torch.equal(p, ck["model"][n]) for n, p in last_step.named_parameters())

    del ck["average"]                                      # a checkpoint from before the average existed
    torch.save(ck, run / "last.pt")
    assert main(["train", "--run", str(run), "--resume", "--steps", "2"]) == 0
    resumed = torch.load(run / "last.pt", weights_only=False)
    for name, average in resumed["average"].items():      # started from its weights, then one step
        expected = ck["model"][name] + (1 - AVERAGE_DECAY) * (resumed["model"][name] - ck["model"][name])
        torch.testing.assert_close(average, expected, rtol=1e-5, atol=1e-7)


def test_band_limited_crops_end_in_a_cliff_and_are_identity_pairs(tmp_path: Path, monkeypatch) -> None:
    from training.v2 import train as v2_train
    from training.v2.bandlimit import band_limit

    x = np.random.default_rng(1).standard_normal(48_000).astype(np.float32) * 0.1
    f = np.fft.rfftfreq(len(x), 1 / 48_000)
    power = np.abs(np.fft.rfft(x)) ** 2
    for seed in range(12):
        y = band_limit(x, np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32
        kept = np.abs(np.fft.rfft(y)) ** 2
        low, high = f < 4000, f > 21000
        assert abs(10 * np.log10(kept[low].sum() / power[low].sum())) < 0.5      # the band below: intact
        assert 10 * np.log10(kept[high].sum() / power[high].sum()) < -30          # above the cliff: gone

    monkeypatch.setattr(v2_train, "P_BAND_LIMITED", 1.0)
    source = PairCache(_pair_cache(tmp_path), "train", 0)
    decoded, clean, labels = v2_train.make_batch(source, 4, 24, np.random.default_rng(0), 32)
    assert labels.mean() < 0.01      # nothing codec-made: the clean crop twice (the cache's pairs: 8 kHz and holes)

    # the band-limited crop is float audio: quantised (here always) as float input is, even where the pair's
    # own chain stored 16-bit samples, so that a dithered band-limited source is seen as clean too
    import training.train as v1_train
    monkeypatch.setattr(v1_train, "P_QUANTIZE", 1.0)
    monkeypatch.setattr(v1_train, "P_NOISE", 0.0)
    monkeypatch.setattr(v1_train, "P_IDENTITY", 0.0)
    s16 = _pair_cache(tmp_path / "s16")
    manifest = json.loads((s16 / "manifest.json").read_text())
    for row in manifest["pairs"]:
        row["chain"] = "minimp3_codec_s16_tpdf"
    (s16 / "manifest.json").write_text(json.dumps(manifest))
    decoded, clean, labels = v2_train.make_batch(PairCache(s16, "train", 0), 4, 24, np.random.default_rng(0), 32)
    assert not torch.equal(decoded, clean) and labels.mean() < 0.01


def test_codec_cliffs_are_found_and_matched_crops_end_there() -> None:
    from scipy.signal import butter, sosfiltfilt

    from training.v2.bandlimit import MATCHED_JITTER, band_limit, codec_cliff_hz

    x = np.random.default_rng(2).standard_normal(48_000).astype(np.float32) * 0.1
    f = np.fft.rfftfreq(len(x), 1 / 48_000)
    for hz in (5_500.0, 8_400.0, 16_000.0):
        coded = sosfiltfilt(butter(24, hz, fs=48_000, output="sos"), x).astype(np.float32)
        found = codec_cliff_hz(x, coded)
        assert found is not None and hz < found < hz * 1.06          # where the decoded side is 20 dB down
        edges = []
        for seed in range(16):
            y = band_limit(x, np.random.default_rng(seed), found)
            kept = np.abs(np.fft.rfft(y)) ** 2 / np.abs(np.fft.rfft(x)) ** 2
            edges.append(f[np.argmax(np.convolve(kept, np.ones(64) / 64, "same") < 0.25)])
        near = [e for e in edges if abs(e - found) < 2 * MATCHED_JITTER * found + 200]
        assert 4 <= len(near) <= 14                          # about half at the codec's cliff, the rest random
    assert codec_cliff_hz(x, x) is None                      # no cliff where nothing is lost
    low = sosfiltfilt(butter(24, 6_000.0, fs=48_000, output="sos"), x)      # a source with nothing above 6.5 kHz
    lower = sosfiltfilt(butter(24, 12_000.0, fs=48_000, output="sos"), low)   # a cliff where there is nothing
    assert codec_cliff_hz(low.astype(np.float32), lower.astype(np.float32)) is None


def test_levels_above_the_cutoff_per_kind_and_split(tmp_path: Path) -> None:
    from training.v2.levels import level_rows

    data = _pair_cache(tmp_path)                          # music only; decoded low-passed at 8 kHz
    torch.manual_seed(0)
    net = BandNet(BandNetConfig(hidden=16)).eval()        # a new network: gain 1, fill 60 dB under the frame
    rows = level_rows(net, data, crops=4)
    assert [(r["kind"], r["split"]) for r in rows] == [("music", "train"), ("music", "val")]
    for r in rows:
        assert r["band_frames"] > 0 and r["median_db"] < -20       # it leaves the missing band missing
        assert r["lsd_estimate"] == pytest.approx(r["lsd_decoded"], abs=0.5)


def test_test_signals_are_tones_or_sweeps_under_full_scale_as_identity_pairs(tmp_path: Path, monkeypatch) -> None:
    from training.v2 import train as v2_train
    from training.v2.testsignals import FREQUENCY_RANGE_HZ, test_signal

    f = np.fft.rfftfreq(48_000, 1 / 48_000)
    for seed in range(20):
        x = test_signal(48_000, np.random.default_rng(seed))
        assert x.shape == (48_000,) and x.dtype == np.float32 and 0 < np.abs(x).max() < 1.0
        power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
        inside = (f > FREQUENCY_RANGE_HZ[0] * 0.8) & (f < FREQUENCY_RANGE_HZ[1] * 1.05)
        assert power[inside].sum() > 0.999 * power.sum()          # nothing outside the range it draws from
    monkeypatch.setattr(v2_train, "P_BAND_LIMITED", 0.0)
    monkeypatch.setattr(v2_train, "P_TEST_SIGNAL", 1.0)
    source = PairCache(_pair_cache(tmp_path), "train", 0)
    _, _, labels = v2_train.make_batch(source, 4, 24, np.random.default_rng(0), 32)
    assert labels.mean() < 0.01      # nothing codec-made: the test signal twice (the cache's pairs: 8 kHz and holes)


def test_cliff_evidence_pairs_coded_crops_with_their_source_low_passed_at_the_cliff(tmp_path: Path) -> None:
    from training.v2.cliffs import STATISTICS, auc, cliff_crops, cliff_rows

    assert auc(np.array([2.0, 3.0]), np.array([1.0])) == 1.0 and auc(np.array([0.0]), np.array([1.0, 2.0])) == 0.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5
    data = _pair_cache(tmp_path)                          # decoded: low-passed at 8 kHz, 20 % of bins dropped
    coded, clean, cliffs = cliff_crops(data, 3)
    assert coded.shape == clean.shape and np.all((cliffs > 8_000) & (cliffs < 8_600))
    power = lambda m, lo, hi: float((m[..., lo:hi] ** 2).sum())           # noqa: E731  bins lo..hi of all crops
    below, above = (0, int(7_000 / 46.875)), (int(9_000 / 46.875), 513)
    assert power(clean, *above) < 1e-3 * power(clean, *below) and power(coded, *above) < 1e-3 * power(coded, *below)
    assert power(coded, *below) < 0.9 * power(clean, *below)            # the holes are the codec's only

    torch.manual_seed(0)
    net = BandNet(BandNetConfig(hidden=16)).eval()        # a new network: the same low confidence everywhere
    rows = cliff_rows(net, data, crops=3)
    assert [r["statistic"] for r in rows] == [s for s in STATISTICS for _ in range(2)]   # 7-10 kHz and all
    share_all = next(r for r in rows if r["statistic"] == "share" and r["cliff_hz"][0] == 0.0)
    assert share_all["crops"] == 3 and share_all["median_coded"] == share_all["median_clean"] == 0.0
    assert share_all["auc"] == 0.5                        # no evidence either way


def test_the_above_term_is_the_loudness_error_of_what_the_codec_removed() -> None:
    from training.v2.loss import SPARSE, loss_terms
    from training.v2.model import Bands

    rng = np.random.default_rng(4)
    net = BandNet(BandNetConfig(hidden=16)).eval()
    clean = torch.from_numpy(rng.rayleigh(1.0, (2, 16, 513)).astype(np.float32)) * 20.0   # loud, every bin
    decoded = clean.clone()
    decoded[..., 180:] = 0.0                                   # a cliff at 8.4 kHz
    power_clean, power_decoded = net.band_powers(clean), net.band_powers(decoded)
    labels = torch.zeros(2, len(range(16)[SPARSE]), net.config.bands)
    gain = torch.ones_like(power_clean)

    def terms(fill: torch.Tensor) -> dict:
        return loss_terms(net, Bands(gain, fill, torch.zeros_like(gain), power_decoded, None), decoded, clean, labels)

    exact = terms((power_clean - power_decoded).clamp(min=0).sqrt())     # fills the lost power exactly
    assert float(exact["above"]) < 1e-3 and float(exact["band"]) < 1e-3
    nothing, half = terms(torch.zeros_like(gain)), terms(((power_clean - power_decoded).clamp(min=0) / 2).sqrt())
    assert float(nothing["above"]) > 10.0                      # nats: the removed band left empty
    assert float(half["above"]) == pytest.approx(np.log(2.0), abs=1e-3)   # half the removed power: ln 2


def test_the_audible_term_scores_band_levels_above_the_frames_floor_only() -> None:
    from training.v2.loss import AUDIBLE_RANGE_DB, audible_band_error

    widths = torch.tensor([0.25, 0.25, 0.5])
    clean = torch.tensor([[[1.0, 1e-2, 1e-7]]])                 # summed: 0, -20 and -63 dB re the loudest band
    mask = torch.ones(1, 1)
    assert float(audible_band_error(clean, clean, widths, mask)) == 0.0
    quieter = clean * torch.tensor([1.0, 1.0, 1e-4])            # the inaudible band 40 dB quieter still: no cost
    assert float(audible_band_error(quieter, clean, widths, mask)) == 0.0
    louder = clean * torch.tensor([1.0, 1.0, 1e6])              # ... 60 dB louder: 33 dB over the floor
    floor_db = -AUDIBLE_RANGE_DB
    summed_db = 10 * np.log10(1e-1 * 0.5 / 0.25)                  # -7 dB: well above the floor
    assert summed_db > floor_db
    over = float(audible_band_error(louder, clean, widths, mask))
    assert over == pytest.approx((summed_db - floor_db) * np.log(10) / 10 / 2, rel=1e-4)   # per audible band
    off_by_6db = clean * torch.tensor([4.0, 1.0, 1.0])         # the loudest band 6 dB off (and the floor with it)
    assert float(audible_band_error(off_by_6db, clean, widths, mask)) == pytest.approx(np.log(4.0) / 2, rel=1e-4)
    assert float(audible_band_error(louder, clean, widths, torch.zeros(1, 1))) == 0.0   # inactive frames: none


def test_restored_rates_are_the_low_rates_of_the_codecs_the_engine_restores() -> None:
    from training.v2.loss import restored_rate

    def pair(encoder: str, kbps: int | None = None, quality: int | None = None) -> dict:
        return {"encoder": encoder, "bitrate_kbps": kbps, "quality": quality}

    assert [restored_rate(pair("lameenc", k)) for k in (24, 32, 64, 96, 128)] == [True, True, True, False, False]
    assert [restored_rate(pair("aac", k)) for k in (32, 48, 64)] == [True, True, False]
    assert [restored_rate(pair("libtwolame", k)) for k in (64, 96)] == [True, False]
    assert [restored_rate(pair("libmp3lame", quality=q)) for q in (9, 8, 6)] == [True, False, False]
    assert not restored_rate(pair("libvorbis", quality=0)) and not restored_rate(pair("libopus", 16))
    assert not restored_rate({"codec": "identity"})                        # no codec: nothing to restore


@pytest.mark.parametrize("kbps", [32, 128])
def test_low_rate_labels_are_the_changed_bins_of_restored_rates_only(tmp_path: Path, kbps: int) -> None:
    from training.v2 import train as v2_train

    data = _pair_cache(tmp_path)
    manifest = json.loads((data / "manifest.json").read_text())
    for row in manifest["pairs"]:
        row.update(encoder="lameenc", bitrate_kbps=kbps, quality=None)
    (data / "manifest.json").write_text(json.dumps(manifest))

    def labels(which: str) -> torch.Tensor:
        source = PairCache(data, "train", 0)
        return v2_train.make_batch(source, 4, 24, np.random.default_rng(0), 32, augment=False, labels=which)[2]

    changed, low_rate = labels("changed"), labels("low_rate")
    assert changed.mean() > 0.05                                             # 8 kHz low-pass and holes
    assert torch.equal(low_rate, changed if kbps == 32 else torch.zeros_like(changed))


def test_nsim_is_visqols_patch_similarity() -> None:
    from visqol.nsim import measure_patch_similarity

    from training.v2.loss import nsim_map

    rng = np.random.default_rng(7)
    clean = rng.uniform(0.0, 45.0, (32, 30))                 # a patch: 32 bands x 30 windows, dB over the floor
    est = np.clip(clean + rng.normal(0.0, 6.0, clean.shape), 0.0, None)
    ours = nsim_map(torch.from_numpy(est)[None], torch.from_numpy(clean)[None], structure_c=4.5e-4)
    assert float(ours.mean()) == pytest.approx(measure_patch_similarity(clean, est).similarity, abs=1e-3)


def test_the_patch_term_scores_where_the_envelope_rises_and_falls() -> None:
    from training.v2.loss import PATCH_HOP_FRAMES, PATCH_WINDOW_FRAMES, patch_dissimilarity

    frames, bands = PATCH_WINDOW_FRAMES + 40 * PATCH_HOP_FRAMES, 8
    widths, mask = torch.full((bands,), 1.0 / bands), torch.ones(1, frames)
    rng = np.random.default_rng(3)
    course_db = np.repeat(rng.normal(0.0, 8.0, (frames // 16 + 1, bands)), 16, axis=0)[:frames]   # 43 ms steps
    clean = torch.from_numpy(10 ** ((course_db - 40.0) / 10))[None]
    mean = clean.log().mean(1, keepdim=True).exp().expand_as(clean)      # the same levels, no course
    inverted = (2 * clean.log().mean(1, keepdim=True) - clean.log()).exp()   # rises where the clean falls
    assert float(patch_dissimilarity(clean, clean, widths, mask)) < 1e-5
    scores = [float(patch_dissimilarity(e, clean, widths, mask)) for e in (clean * 2.0, mean, inverted)]
    assert scores[0] < 0.05 < scores[1] < scores[2]          # 3 dB louder < no course < the course inverted
    band_errors = [float((e.log() - clean.log()).abs().mean()) for e in (mean, inverted)]
    assert band_errors[0] < band_errors[1]
    assert float(patch_dissimilarity(inverted, clean, widths, torch.zeros(1, frames))) == 0.0   # inactive: none
    short = clean[:, : PATCH_WINDOW_FRAMES - 1]
    assert float(patch_dissimilarity(short * 2.0, short, widths, mask[:, : PATCH_WINDOW_FRAMES - 1])) == 0.0


def test_the_over_term_makes_band_levels_above_the_clean_ones_cost_more() -> None:
    from training.v2.loss import SPARSE, loss_terms
    from training.v2.model import Bands

    rng = np.random.default_rng(5)
    net = BandNet(BandNetConfig(hidden=16)).eval()
    clean = torch.from_numpy(rng.rayleigh(1.0, (2, 16, 513)).astype(np.float32)) * 20.0
    power = net.band_powers(clean)
    labels = torch.zeros(2, len(range(16)[SPARSE]), net.config.bands)
    no_fill = torch.zeros_like(power)

    def terms(gain: float, over_weight: float = 1.0) -> dict:
        gains = torch.full_like(power, gain)
        return loss_terms(net, Bands(gains, no_fill, torch.zeros_like(power), power, None), clean, clean, labels,
                          over_weight=over_weight)

    louder, quieter = terms(2.0), terms(0.5)                   # every band 6 dB over / under the clean one
    assert float(louder["band"]) == pytest.approx(np.log(4.0), rel=1e-4) == float(quieter["band"])
    assert float(louder["over"]) == pytest.approx(np.log(4.0), rel=1e-4) and float(quieter["over"]) == 0.0
    assert float(terms(0.5, 3.0)["total"]) == pytest.approx(float(quieter["total"]), rel=1e-6)
    assert float(terms(2.0, 3.0)["total"]) == pytest.approx(float(louder["total"]) + 2 * np.log(4.0), rel=1e-4)
    assert "patch" not in louder                               # at weight 0 scored where nothing trains only
    with torch.no_grad():
        assert "patch" in terms(2.0)


def test_the_rebuild_trains_through_its_stages_and_resumes_in_the_one_it_stopped_in(tmp_path: Path) -> None:
    from training.v2.rebuild import Stage, train_stages
    data = _pair_cache(tmp_path)
    run = tmp_path / "run"
    second = 3e-4                                                        # CPU hours: about a CPU second each
    stages = (Stage(second, second), Stage(4 * second, 2 * second, restart_lr=3e-4, batch=1, frames=48),
              Stage(5 * second, 3 * second, over_weight=2.0))
    config = BandNetConfig(hidden=16)
    train_stages(run, str(data), stages[:2], config)
    ck = torch.load(run / "last.pt", weights_only=False)
    state = ck["state"]
    assert state["cpu_s"] >= 2 * second * 3600 and ck["budget_cpu_s"] == pytest.approx(4 * second * 3600)
    assert second * 3600 <= state["schedule"]["cpu_s"] < 2 * second * 3600 and state["schedule"]["lr"] == 3e-4
    assert (state["batch"], state["frames"], state["over_weight"]) == (1, 48, 1.0)
    train_stages(run, str(data), stages, config)                          # on into the third: no second restart
    ck = torch.load(run / "last.pt", weights_only=False)
    assert ck["state"]["schedule"] == state["schedule"] and ck["state"]["over_weight"] == 2.0
    assert ck["state"]["cpu_s"] >= 3 * second * 3600 and ck["budget_cpu_s"] == pytest.approx(5 * second * 3600)
    assert (ck["state"]["batch"], ck["state"]["frames"]) == (1, 48)
    step = ck["state"]["step"]
    assert train_stages(run, str(data), stages, config) is None           # every stage passed: nothing trains
    assert torch.load(run / "last.pt", weights_only=False)["state"]["step"] == step


def test_a_run_stops_where_told_before_its_budget(tmp_path: Path) -> None:
    data = _pair_cache(tmp_path)
    run = tmp_path / "run"
    assert main(_tiny_run(run, data) + ["--cpu-hours", "1", "--stop-at-cpu-hours", "1e-5"]) == 0
    ck = torch.load(run / "last.pt", weights_only=False)
    assert 0.036 <= ck["state"]["cpu_s"] < 3600 and ck["budget_cpu_s"] == 3600.0


def test_the_hold_term_is_zero_against_itself_and_grows_as_the_confidence_moves() -> None:
    from training.v2.loss import confidence_divergence
    logit = torch.tensor([[[-2.0, 0.0, 3.0]]])
    mask = torch.ones(1, 1)
    assert float(confidence_divergence(logit, logit, mask)) == pytest.approx(0.0, abs=1e-7)
    near = float(confidence_divergence(logit - 0.5, logit, mask))
    far = float(confidence_divergence(logit - 2.0, logit, mask))
    assert 0.0 < near < far


def test_a_held_confidence_is_recorded_kept_on_resume_and_in_the_total(tmp_path: Path) -> None:
    data = _pair_cache(tmp_path)
    anchor_run, run = tmp_path / "anchor", tmp_path / "run"
    assert main(_tiny_run(anchor_run, data) + ["--steps", "1", "--cpu-hours", "1"]) == 0
    anchor = str(anchor_run / "last.pt")
    ck = torch.load(anchor, weights_only=False)
    for weights in (ck["model"], ck["average"]):                 # an anchor whose confidence is 0.5 everywhere
        weights["local.bias"][2] += 4.0
    torch.save(ck, anchor)
    assert main(_tiny_run(run, data) + ["--steps", "2", "--cpu-hours", "1", "--hold-confidence", anchor,
                                        "--hold-weight", "3"]) == 0
    assert main(["train", "--run", str(run), "--resume", "--steps", "3"]) == 0
    state = torch.load(run / "last.pt", weights_only=False)["state"]
    assert state["hold"] == {"checkpoint": anchor, "weight": 3.0} and state["step"] == 3
    record = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert record["val_reference_hold"] > 0.0
    assert record["val_reference_total"] == pytest.approx(
        record["val_reference_band"] + 0.5 * record["val_reference_bin"] + 0.2 * record["val_reference_confidence"]
        + 3.0 * record["val_reference_hold"], abs=3e-4)


def _with_source(root: Path, source: str) -> Path:
    """A pair cache whose rows all name `source`."""
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["pairs"] = [{**r, "source": source} for r in manifest["pairs"]]
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_source_weights_scale_how_often_a_source_is_drawn_and_are_kept_on_resume(tmp_path: Path) -> None:
    first = _with_source(_pair_cache(tmp_path / "r0"), "renders")
    second = _with_source(_pair_cache(tmp_path / "r1", seed=1), "mixes")
    weighted = PairCache([first, second], "train", 0, source_weights={"mixes": 3.0})
    assert weighted.p.tolist() == [0.25, 0.75]
    drawn = [weighted.crop(24)[1]["source"] for _ in range(400)]
    assert 0.68 < drawn.count("mixes") / 400 < 0.82
    for refused in ({"mix": 3.0}, {"renders": 0.0, "mixes": 0.0}, {"mixes": -1.0}):
        with pytest.raises(SystemExit):
            PairCache([first, second], "train", 0, source_weights=refused)
    run = tmp_path / "run"
    args = ["train", "--run", str(run), "--batch", "2", "--frames", "24", "--hidden", "16", "--data", str(first),
            str(second), "--steps", "1", "--cpu-hours", "1", "--source-weight", "mixes=3", "--source-weight",
            "renders=0.5"]
    assert main(args) == 0
    assert main(["train", "--run", str(run), "--resume", "--steps", "2"]) == 0
    state = torch.load(run / "last.pt", weights_only=False)["state"]
    assert state["source_weights"] == {"mixes": 3.0, "renders": 0.5} and state["step"] == 2
    sessions = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if "session" in line]
    assert [s["source_weights"] for s in sessions] == [{"mixes": 3.0, "renders": 0.5}] * 2
    with pytest.raises(SystemExit):
        main(["train", "--run", str(run), "--resume", "--steps", "3", "--source-weight", "mixes"])

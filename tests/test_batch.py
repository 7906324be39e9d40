"""`gapfill restore IN... -o OUTDIR`: outputs as single-file restore makes them, bad files reported and the
rest done, reruns skip complete outputs, killed runs restart to complete outputs only; the plan (which
files, which output paths) and the fingerprint that decides what is complete."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from batch_library import (assert_all_restored, BAD_FILES, GOOD_FILES, make_library, partial_files, restore_singly,
                           visible_files, wait_for_a_file_being_written)
from realtime.atomic import temporary_path
from realtime.batch.engine_spec import engine_spec
from realtime.batch.plan import discover_inputs, output_paths
from realtime.batch.sidecar import read_sidecar, sidecar_path
from realtime.batch.worker import FileTask, restore_task
from realtime.cli.main import main
from conftest import read_until_closed


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    return make_library(tmp_path_factory.mktemp("library"))


@pytest.fixture(scope="module")
def singly(library, tmp_path_factory) -> dict[str, np.ndarray]:
    return restore_singly(library, tmp_path_factory.mktemp("singly"))


def batch(*args: str) -> int:
    """Run `gapfill restore ... ` in this process; returns the exit status."""
    return main(["restore", *args])


def test_jobs_2_restores_like_single_files_and_reports_bad_ones(library, singly, tmp_path, run_gapfill):
    out, report = tmp_path / "out", tmp_path / "report.json"
    done = run_gapfill("restore", str(library), "-o", str(out), "--recursive", "--jobs", "2",
                       "--report", str(report))
    assert done.returncode == 2  # some files failed
    lines = done.stderr.decode().splitlines()
    for name in BAD_FILES:
        failure = [line for line in lines if str(library / name) in line]
        assert len(failure) == 1 and failure[0].startswith("gapfill: cannot read "), lines
    assert lines[-1].startswith("gapfill: 6 files: 4 restored, 0 skipped (complete), 2 failed; ")
    assert visible_files(out) == sorted(singly)  # the tree mirrored; nothing for bad files or notes.txt
    for name, expected in singly.items():
        assert sf.info(out / name).subtype == "PCM_24"
        assert np.array_equal(sf.read(out / name, always_2d=True)[0], expected), name
    assert partial_files(out) == []
    facts = json.loads(report.read_text())
    assert facts["files"] == {"total": 6, "restored": 4, "skipped": 0, "failed": 2}
    assert sorted(f["input"] for f in facts["failures"]) == sorted(str(library / n) for n in BAD_FILES)
    audio_s = sum(seconds for _, _, seconds in GOOD_FILES.values())
    assert facts["audio_hours_restored"] * 3600 == pytest.approx(audio_s, abs=0.2)  # MP3 adds a little
    assert facts["hours_per_hour"] > 0 and facts["worker_peak_rss_mib"] > 0
    stats = {o["input"]: o["stats"] for o in facts["outcomes"] if o["status"] == "restored"}
    assert stats[str(library / "talk/a.mp3")]["rates"] == dict(
        stats[str(library / "talk/a.mp3")]["rates"], input_hz=22_050, output_hz=48_000)
    assert b"\r" not in done.stderr  # no bar when stderr is not a terminal


def test_output_rate_is_part_of_what_makes_an_output_complete(tmp_path, passthrough_config, capfd):
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in/x.wav", np.zeros((2205, 1), np.float32), 22_050)
    command = [str(tmp_path / "in/x.wav"), "-o", str(tmp_path / "out"), "--config", passthrough_config]
    assert batch(*command, "--rate", "keep") == 0
    assert sf.info(tmp_path / "out/x.flac").samplerate == 22_050
    assert batch(*command) == 0  # the automatic rate: another engine fingerprint, so restored again
    assert "1 restored, 0 skipped" in capfd.readouterr().err
    assert sf.info(tmp_path / "out/x.flac").samplerate == 48_000


def test_one_bar_on_a_terminal(tmp_path, write_audio, passthrough_config, popen_gapfill):
    (tmp_path / "in").mkdir()
    for i in range(3):
        write_audio(tmp_path / f"in/{i}.wav", 48_000, 1)
    leader, follower = pty.openpty()
    process = popen_gapfill("restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--recursive",
                            "--jobs", "1", "--config", passthrough_config, stderr=follower)
    os.close(follower)
    shown = read_until_closed(leader)
    assert process.wait(timeout=120) == 0
    bar = shown.split(b"\r")[1]
    assert b"/3 files" in bar and b"of audio" in bar and b"h/h" in bar and b"ETA" in bar
    assert b"\r\033[Kgapfill: 3 files: 3 restored, 0 skipped (complete), 0 failed; 3.0 s of audio in " in shown


def test_rerun_skips_complete_outputs_and_redoes_a_changed_input(library, tmp_path, passthrough_config, capfd):
    copy, out = tmp_path / "library", tmp_path / "out"
    shutil.copytree(library, copy)
    assert batch(str(copy), "-o", str(out), "--recursive", "--config", passthrough_config) == 2
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    capfd.readouterr()

    assert batch(str(copy), "-o", str(out), "--recursive", "--config", passthrough_config,
                 "--report", str(tmp_path / "again.json")) == 2  # the bad files fail again
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps  # nothing written
    assert "4 skipped (complete), 2 failed" in capfd.readouterr().err
    assert json.loads((tmp_path / "again.json").read_text())["worker_peak_rss_mib"] is None  # no worker ran

    changed = copy / "talk/b.mp3"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    assert batch(str(copy), "-o", str(out), "--recursive", "--config", passthrough_config) == 2
    assert "1 restored, 3 skipped (complete), 2 failed" in capfd.readouterr().err
    rewritten = {p for p in stamps if p.exists() and p.stat().st_mtime_ns != stamps[p]}
    assert rewritten == {out / "talk/b.flac", out / "talk/.b.flac.gapfill.json"}


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in status:
            found.append(int(entry))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_restarts_to_complete_outputs_only(stop, tmp_path, write_audio, passthrough_config,
                                                      popen_gapfill, run_gapfill):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    signals = {f"part{i}.wav": write_audio(inputs / f"part{i}.wav", 48_000 * 5, 1, subtype="PCM_16")
               for i in range(8)}
    command = ("restore", str(inputs), "-o", str(out), "--recursive", "--jobs", "2", "--format", "wav",
               "--config", passthrough_config)
    process = popen_gapfill(*command)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if any((read_sidecar(p) or {}).get("complete") for p in out.rglob("*.wav")):
            break
        time.sleep(0.005)
    workers = _children(process.pid)
    process.send_signal(stop)
    status = process.wait(timeout=60)
    assert status == (-signal.SIGKILL if stop == signal.SIGKILL else 128 + signal.SIGTERM)
    deadline = time.monotonic() + 60
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.01)  # killed with their parent (SIGTERM from the kernel)
    assert not any(_running(pid) for pid in workers)
    if stop == signal.SIGTERM:
        assert partial_files(out) == []  # the parent stopped its workers, which removed their files
    unmarked = []  # whole outputs whose sidecar still says incomplete: the stop fell between the output's
    for name in visible_files(out):  # rename and the sidecar's update (batch/worker.py): the rerun redoes them
        assert sf.info(out / name).frames == 48_000 * 5  # whatever is there is whole
        record = read_sidecar(out / name)
        assert record is not None
        if not record["complete"]:
            unmarked.append(name)

    done = run_gapfill(*command, "--report", str(tmp_path / "report.json"))
    assert done.returncode == 0, done.stderr.decode()
    assert visible_files(out) == sorted(signals) and partial_files(out) == []
    for name, x in signals.items():
        y = sf.read(out / name, dtype="float32", always_2d=True)[0]
        assert y.shape == x.shape and np.abs(y - x).max() <= 2.0**-15
    files = json.loads((tmp_path / "report.json").read_text())["files"]
    assert files["restored"] + files["skipped"] == 8 and files["skipped"] >= 1
    assert files["restored"] >= len(unmarked)


def test_a_worker_killed_mid_file_hands_its_file_to_a_fresh_worker(tmp_path, write_audio, passthrough_config,
                                                                    popen_gapfill):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    signals = {f"part{i}.wav": write_audio(inputs / f"part{i}.wav", 48_000 * 5, 1, subtype="PCM_16")
               for i in range(6)}
    process = popen_gapfill("restore", str(inputs), "-o", str(out), "--recursive", "--jobs", "2",
                            "--format", "wav", "--config", passthrough_config,
                            "--report", str(tmp_path / "report.json"))
    wait_for_a_file_being_written(out, process)
    workers = [pid for pid in _children(process.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == 2
    for pid in workers:  # the one writing that file dies mid-file
        os.kill(pid, signal.SIGKILL)
    assert process.wait(timeout=120) == 0, process.stderr.read().decode()
    assert_all_restored(out, signals, tmp_path / "report.json")


def test_a_worker_removes_the_temporaries_a_killed_worker_left_for_its_output_only(tmp_path, write_audio,
                                                                                    passthrough_config):
    write_audio(tmp_path / "x.wav", 4800, 1)
    output = tmp_path / "out/x.flac"
    output.parent.mkdir()
    left = [temporary_path(output), temporary_path(sidecar_path(output))]
    kept = temporary_path(tmp_path / "out/xx.flac")
    for path in [*left, kept]:
        path.write_bytes(b"half")
    engine = engine_spec(passthrough_config)
    outcome = restore_task(FileTask(str(tmp_path / "x.wav"), str(output), engine))
    assert outcome.status == "restored", outcome.reason
    assert not any(path.exists() for path in left) and kept.exists()
    assert sf.info(output).frames == 4800 and read_sidecar(output)["complete"] is True


# -- the plan ------------------------------------------------------------------------------------
def test_outputs_mirror_the_inputs_below_their_common_folder(library, tmp_path):
    out = tmp_path / "out"
    files, root = discover_inputs([str(library / "talk"), str(library / "music")], True, None, str(out))
    assert root == str(library)
    assert files == sorted(str(library / n) for n in [*GOOD_FILES, *BAD_FILES])  # not notes.txt
    assert output_paths(files, root, str(out), "wav") == [
        str(out / Path(f).relative_to(library).with_suffix(".wav")) for f in files
    ]
    files, root = discover_inputs([str(library / "talk/a.mp3")], False, None, str(out))
    assert output_paths(files, root, str(out), "flac") == [str(out / "a.flac")]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")
def test_folders_give_the_files_ffmpeg_decodes_too(tmp_path, write_audio, passthrough_config):
    from test_formats import FORMATS, encode, ffmpeg_decode

    write_audio(tmp_path / "source.wav", 44_100, 2, rate=44_100)
    library = tmp_path / "library"
    (library / "talk").mkdir(parents=True)
    names = {"talk/a.m4a": ".m4a", "talk/b.wma": ".wma", "c.webm": ".webm"}
    for name, suffix in names.items():
        encode(tmp_path / "source.wav", library / name, FORMATS[suffix][0])
    (library / "cover.jpg").write_bytes(b"not audio")
    out = tmp_path / "out"
    assert batch(str(library), "-o", str(out), "--recursive", "--jobs", "1", "--config", passthrough_config) == 0
    assert visible_files(out) == ["c.flac", "talk/a.flac", "talk/b.flac"]
    for name in names:
        decoded, rate = ffmpeg_decode(library / name)
        info = sf.info(out / Path(name).with_suffix(".flac"))
        assert (info.frames, info.samplerate, info.channels) == (len(decoded), rate, 2)


def test_list_file_and_an_output_folder_inside_the_inputs(tmp_path, write_audio):
    write_audio(tmp_path / "x.wav", 100, 1)
    for folder in ("sub", "restored"):
        (tmp_path / folder).mkdir()
    write_audio(tmp_path / "sub/y.flac", 100, 1)
    write_audio(tmp_path / "restored/x.wav", 100, 1)  # an earlier output: not an input
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'sub/y.flac'}\n\n")
    files, root = discover_inputs([str(tmp_path / "x.wav")], False, str(listing), str(tmp_path / "restored"))
    assert files == [str(tmp_path / "sub/y.flac"), str(tmp_path / "x.wav")] and root == str(tmp_path)
    files, _ = discover_inputs([str(tmp_path)], True, None, str(tmp_path / "restored"))
    assert files == [str(tmp_path / "sub/y.flac"), str(tmp_path / "x.wav")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{d}", "-o", "{d}/out"], "is a folder; use --recursive"),
        (["{d}/x.mp3", "{d}/x.ogg", "-o", "{d}/out"], "would both be restored to"),
        (["{d}/x.mp3", "-o", "{d}", "--format", "wav", "--force"], None),  # x.wav beside it: fine
        (["{d}/x.wav", "-o", "{d}", "--format", "wav"], "would overwrite an input"),
        (["{d}/x.mp3", "{d}/y.wav", "--jobs", "2"], "--jobs need -o OUTDIR"),
        (["{d}/x.mp3"], "restore takes IN OUT (one file), or IN... -o OUTDIR"),
        (["-o", "{d}/out"], "nothing to restore"),
        (["-o", "{d}/out", "--from-list", "{d}/missing.txt"], "cannot read list"),
        (["{d}/x.mp3", "-o", "{d}/out", "--stats-json", "{d}/s.json"], "--stats-json is for one file"),
        (["{d}/x.mp3", "-o", "{d}/out", "--jobs", "2", "--scheduler", "tcp://h:8786"], "--jobs sets local workers"),
    ],
)
def test_command_line_problems_stop_before_any_work(argv, message, tmp_path, passthrough_config, capfd):
    for name in ("x.mp3", "x.ogg", "x.wav"):
        (tmp_path / name).write_bytes(b"")
    status = batch(*[a.format(d=tmp_path) for a in argv], "--config", passthrough_config)
    err = capfd.readouterr().err
    if message is None:
        assert status == 2 and "cannot read" in err  # planned, then the empty file is reported
    else:
        assert status == 2 and err.startswith("gapfill: ") and message in err and err.count("\n") == 1, err


def test_an_output_a_batch_did_not_write_is_left_alone(tmp_path, write_audio, passthrough_config, capfd):
    for folder in ("in", "out"):
        (tmp_path / folder).mkdir()
    write_audio(tmp_path / "in/x.wav", 4800, 1)
    (tmp_path / "out/x.flac").write_bytes(b"precious")
    assert batch(str(tmp_path / "in/x.wav"), "-o", str(tmp_path / "out"), "--config", passthrough_config) == 2
    assert "was not written by a batch restore; use --force" in capfd.readouterr().err
    assert (tmp_path / "out/x.flac").read_bytes() == b"precious"
    assert batch(str(tmp_path / "in/x.wav"), "-o", str(tmp_path / "out"), "--config", passthrough_config,
                 "--force") == 0
    assert sf.info(tmp_path / "out/x.flac").frames == 4800 and read_sidecar(tmp_path / "out/x.flac")["complete"]


def test_fingerprint_covers_config_and_model_bytes(tmp_path, passthrough_config):
    shipped = engine_spec(None)
    assert shipped.config.model["threads"] == 1
    assert engine_spec(None).fingerprint == shipped.fingerprint
    assert engine_spec(passthrough_config).fingerprint != shipped.fingerprint
    other_phase = tmp_path / "rtpghi.yaml"
    other_phase.write_text("phase: {method: rtpghi}\n")
    assert engine_spec(str(other_phase)).fingerprint != shipped.fingerprint
    from realtime.engine.model_files import shipped_model_path

    model = tmp_path / "copy.onnx"
    shutil.copyfile(shipped_model_path(), model)
    same_bytes = tmp_path / "copy.yaml"
    same_bytes.write_text(f"model: {{path: {model}}}\n")
    assert engine_spec(str(same_bytes)).fingerprint == shipped.fingerprint  # the bytes count, not the path
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    assert engine_spec(str(same_bytes)).fingerprint != shipped.fingerprint


def test_batch_benchmark_quick_run(tmp_path):
    """benchmarks/batch.py runs and writes what it promises (structure only; nothing about speed)."""
    out = tmp_path / "batch.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.batch", "--quick", "--json", str(out)],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "batch" and result["quick"] is True and result["identical_outputs"] is True
    assert set(result["throughput"]) == {"jobs 1", "jobs 2", "dask local, 2 workers"}
    for run in result["throughput"].values():
        assert run["files"]["restored"] == result["workload"]["files"] and run["hours_per_hour"] > 0
        assert run["audio_s"] == pytest.approx(result["workload"]["audio_s"], rel=0.05)
    assert result["throughput"]["jobs 1"]["vs_jobs_1"] == 1.0
    assert result["long_input"]["worker_peak_rss_mib"] > 10 and result["long_input"]["hours_per_cpu_hour"] > 0
    assert "Batch throughput" in done.stdout and "Worker memory" in done.stdout

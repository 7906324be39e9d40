"""`gapfill restore IN... -o OUTDIR --scheduler ADDRESS` on a dask.distributed LocalCluster started here
(two worker processes, one thread each): the same outputs as single-file restore, bad files reported,
and a worker killed mid-file leaves neither a duplicate nor a partial output."""

from __future__ import annotations

import json
import os
import signal

import distributed  # the cluster extra; the README's test command installs it
import numpy as np
import pytest
import soundfile as sf

from batch_library import (assert_all_restored, BAD_FILES, make_library, partial_files, restore_singly, visible_files,
                           wait_for_a_file_being_written)


@pytest.fixture(scope="module")
def scheduler() -> str:
    """Address of a local cluster of two worker processes with one thread each."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_cluster_restores_like_single_files_and_reports_bad_ones(scheduler, tmp_path, run_gapfill):
    library = make_library(tmp_path / "library")
    singly = restore_singly(library, tmp_path / "singly")
    out, report = tmp_path / "out", tmp_path / "report.json"
    done = run_gapfill("restore", str(library), "-o", str(out), "--recursive", "--scheduler", scheduler,
                       "--report", str(report))
    assert done.returncode == 2, done.stderr.decode()
    err = done.stderr.decode()
    assert all(f"gapfill: cannot read '{library / name}'" in err for name in BAD_FILES), err
    assert visible_files(out) == sorted(singly) and partial_files(out) == []
    for name, expected in singly.items():
        assert np.array_equal(sf.read(out / name, always_2d=True)[0], expected), name
    facts = json.loads(report.read_text())
    assert facts["files"] == {"total": 6, "restored": 4, "skipped": 0, "failed": 2}
    assert facts["backend"] == f"dask {scheduler}"

    again = run_gapfill("restore", str(library), "-o", str(out), "--recursive", "--scheduler", scheduler)
    assert again.returncode == 2 and "0 restored, 4 skipped (complete), 2 failed" in again.stderr.decode()


def test_a_worker_killed_mid_file_leaves_no_duplicate_or_partial_output(
    scheduler, tmp_path, write_audio, passthrough_config, popen_gapfill
):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    signals = {f"part{i}.wav": write_audio(inputs / f"part{i}.wav", 48_000 * 5, 1, subtype="PCM_16")
               for i in range(6)}
    with distributed.Client(scheduler) as client:
        worker_pids = sorted(client.run(os.getpid).values())
    process = popen_gapfill("restore", str(inputs), "-o", str(out), "--recursive", "--format", "wav",
                            "--scheduler", scheduler, "--config", passthrough_config,
                            "--report", str(tmp_path / "report.json"))
    wait_for_a_file_being_written(out, process)
    for pid in worker_pids:  # the one writing that file dies mid-file; the nannies start new workers
        os.kill(pid, signal.SIGKILL)
    assert process.wait(timeout=240) == 0, process.stderr.read().decode()
    assert_all_restored(out, signals, tmp_path / "report.json")

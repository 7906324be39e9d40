"""The stream course benchmark (benchmarks/stream_course.py): its --quick run's JSON and table, and the
course and leave-one-out fit it is built on."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.stream_course import FITS, SCHEMA_VERSION, course, leave_one_out
from conftest import run_benchmark


def test_stream_course_benchmark_quick_run(tmp_path):
    out = tmp_path / "stream_course.json"
    done = run_benchmark("benchmarks.stream_course", "--quick", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["benchmark"] == "stream_course" and result["quick"] is True
    assert result["schema"] == SCHEMA_VERSION and result["condition"] == "libmp3lame_32k"
    assert len(result["per_clip"]) == 2
    for row in result["per_clip"]:
        assert row["sample_rate"] == 48_000 and row["granules"] == 2 * 48_000 // 576
        assert set(row["r"]) == set(FITS) and all(-1.0 <= r <= 1.0 for r in row["r"].values())
        assert all(1.0 <= v <= 5.0 for v in row["visqol"].values())
    summary = result["summary"]
    assert summary["stream_course_higher"] + summary["stream_course_lower"] <= 2
    assert "| the output's course |" in done.stdout and "| the stream's side info alone |" in done.stdout


def test_course_removes_the_moving_mean_and_the_fit_predicts_a_clip_from_the_others():
    steps = np.repeat([0.0, 10.0], 50)
    assert abs(course(steps, 5)[20]) < 1e-12 and abs(course(steps, 5)[80]) < 1e-12   # a level, no course
    rng = np.random.default_rng(5)
    clips = []
    for _ in range(4):                         # the clean course is 2 x input a - input b, plus a little noise
        a, b = rng.normal(size=(200, 1)), rng.normal(size=(200, 1))
        clips.append({"clean": 2.0 * a[:, 0] - b[:, 0] + 0.01 * rng.normal(size=200),
                      "inputs": {"output": a, "stream": b}})
    for clip, predicted in zip(clips, leave_one_out(clips, ("output", "stream"))):
        assert np.corrcoef(clip["clean"], predicted)[0, 1] > 0.999
    for clip, predicted in zip(clips, leave_one_out(clips, ("stream",))):
        assert abs(np.corrcoef(clip["clean"], predicted)[0, 1]) < 0.7      # b alone explains a fifth

"""realtime.atomic: a target is whole or untouched, temporaries are hidden beside it with its suffix, and
the leftovers of a killed writer are found for exactly that target."""

from __future__ import annotations

import os
import re

import pytest

from realtime import atomic
from realtime.atomic import TEMPORARY_MARK, atomic_write, leftover_temporaries, temporary_path


def test_a_finished_write_replaces_the_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "x.flac"
    target.write_text("old")
    with atomic_write(target) as temp:
        assert temp.parent == tmp_path and temp.exists() and temp.read_text() == ""
        assert target.read_text() == "old"  # untouched until the block ends
        temp.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.flac"]


def test_a_failed_write_leaves_the_target_untouched_and_no_temporary(tmp_path):
    target = tmp_path / "x.flac"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as temp:
            temp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.flac"]


def test_a_failed_rename_removes_the_temporary(tmp_path):
    target = tmp_path / "x.png"
    target.mkdir()  # a folder cannot be replaced by a file
    with pytest.raises(OSError):
        with atomic_write(target) as temp:
            temp.write_text("picture")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


class _SignalledAfterCreate:
    """os as atomic_write sees it, but closing the new temporary file raises SystemExit after the close, as a
    SIGTERM handler does when the signal arrives the moment the file exists."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def close(fd):
        os.close(fd)
        raise SystemExit(143)


def test_a_signal_the_moment_the_temporary_exists_removes_it(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    target.write_text("old")
    monkeypatch.setattr(atomic, "os", _SignalledAfterCreate())
    with pytest.raises(SystemExit):
        with atomic_write(target):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"] and target.read_text() == "old"


def test_another_writers_temporary_of_the_same_name_is_left_alone(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    taken = temporary_path(target)
    taken.write_text("theirs")
    monkeypatch.setattr(atomic, "temporary_path", lambda _: taken)
    with pytest.raises(FileExistsError):
        with atomic_write(target):
            pass
    assert taken.read_text() == "theirs"


def test_a_missing_folder_is_an_oserror_before_the_block_runs(tmp_path):
    ran = False
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "no/such/x.json"):
            ran = True
    assert not ran


@pytest.mark.parametrize("name, pattern", [
    ("x.flac", r"\.x\.partial-[0-9a-f]{8}\.flac"),
    (".x.flac.gapfill.json", r"\.x\.flac\.gapfill\.partial-[0-9a-f]{8}\.json"),  # hidden already: one dot
    ("report", r"\.report\.partial-[0-9a-f]{8}"),
])
def test_temporaries_are_hidden_beside_the_target_with_its_suffix(tmp_path, name, pattern):
    temp = temporary_path(tmp_path / name)
    assert temp.parent == tmp_path and TEMPORARY_MARK in temp.name
    assert re.fullmatch(pattern, temp.name), temp.name
    assert temporary_path(tmp_path / name) != temp


def test_leftovers_are_those_of_the_target_only(tmp_path):
    target, sidecar = tmp_path / "x.flac", tmp_path / ".x.flac.gapfill.json"
    mine = [temporary_path(target), temporary_path(target), temporary_path(sidecar)]
    others = [temporary_path(tmp_path / name) for name in ("x.wav", "x.y.flac", "xx.flac", "y.flac")]
    for path in [*mine, *others, target, tmp_path / ".x.partial-1234.flac"]:
        path.write_text("")
    assert sorted(leftover_temporaries(target)) == sorted(mine[:2])
    assert leftover_temporaries(sidecar) == [mine[2]]
    assert leftover_temporaries(tmp_path / "missing-folder" / "x.flac") == []

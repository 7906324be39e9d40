"""Every split unit of data v2: what it is made of, its kind and the package it comes from.

The first corpus's units come from training/corpus.py's `list_units` (tuxpaint files, hedgewars voice
packs and music, wesnoth music, music21 renders, hydrogen kits) under their split.json names. The packages
DATA.md lists under "More sources" add, by the table `PACKAGE_SOURCES`:
    music   one unit per track;
    speech  one unit per voice pack (a civilisation, a faction, a character), so a speaker never sits on
            both sides of the split.
Generated units: `render2/...` (more music21 works rendered whole, as corpus.render_score does),
`mixscore/...` (works whose parts become the instrument stems of dense mixes) and `synthkit/<n>` (drum kits
synthesised from a seed; the hydrogen kits are all on the training side of split.json, so validation and
test mixes draw their drums from these).
Sound effects (weapons, footsteps, ambiences, interface) are neither speech nor music and are not listed.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import random
import re
from dataclasses import dataclass
from functools import lru_cache

from training import corpus
from training.corpus import Unit
from training.data.audio import ZIP_SEPARATOR, _archive

ZERO_AD = "/usr/share/games/0ad/mods/public/public.zip"
OPENARENA_MP = "/usr/share/games/openarena/missionpack/mp-pak0.pk3"
OPENARENA_BASE = "/usr/share/games/openarena/baseoa/pak0.pk3"
MEGAGLEST_FACTIONS = "/usr/share/games/megaglest/techs/megapack/factions"


@dataclass(frozen=True)
class PackageSource:
    """Files of one package: `pattern` a glob (`**` recursive) or `archive::member-glob`; `pack` a regex whose
    first group names the voice pack a file belongs to (None: one unit per file)."""

    family: str
    package: str
    kind: str
    pattern: str
    pack: str | None = None


PACKAGE_SOURCES = (
    PackageSource("stk", "supertuxkart-data", "music", "/usr/share/games/supertuxkart/data/music/*.ogg"),
    PackageSource("widelands", "widelands-data", "music", "/usr/share/games/widelands/data/music/*.ogg"),
    PackageSource("wz2100", "warzone2100-music", "music", "/usr/share/games/warzone2100/music/**/*.opus"),
    PackageSource("freedroid", "freedroidrpg-data", "music", "/usr/share/freedroidrpg/data/sound/music/*.ogg"),
    PackageSource("redeclipse", "redeclipse-data", "music", "/usr/share/games/redeclipse/data/sounds/music/*.ogg"),
    PackageSource("redeclipse", "redeclipse-data", "music", "/usr/share/games/redeclipse/data/sounds/*.ogg"),
    PackageSource("megaglest", "megaglest-data", "music", "/usr/share/games/megaglest/**/music/*.ogg"),
    PackageSource("frozenbubble", "frozen-bubble-data", "music", "/usr/share/games/frozen-bubble/snd/*zik*.ogg"),
    PackageSource("pingus", "pingus-data", "music", "/usr/share/games/pingus/data/music/*.it"),
    PackageSource("pingus", "pingus-data", "music", "/usr/share/games/pingus/data/music/*.s3m"),
    PackageSource("0ad", "0ad-data", "music", f"{ZERO_AD}{ZIP_SEPARATOR}audio/music/*.ogg"),
    PackageSource("0ad-voice", "0ad-data", "speech", f"{ZERO_AD}{ZIP_SEPARATOR}audio/voice/*/civ/*.ogg",
                  r"audio/voice/([^/]+)/"),
    PackageSource("megaglest-voice", "megaglest-data", "speech", f"{MEGAGLEST_FACTIONS}/*/units/*/sounds/*_ack*.wav",
                  r"factions/([^/]+)/"),
    PackageSource("megaglest-voice", "megaglest-data", "speech",
                  f"{MEGAGLEST_FACTIONS}/*/units/*/sounds/*_select*.wav", r"factions/([^/]+)/"),
    PackageSource("redeclipse-voice", "redeclipse-data", "speech",
                  "/usr/share/games/redeclipse/data/sounds/announcer/*.ogg", r"sounds/(announcer)/"),
    PackageSource("redeclipse-voice", "redeclipse-data", "speech",
                  "/usr/share/games/redeclipse/data/sounds/voice/*.ogg", r"sounds/(voice)/"),
    PackageSource("openarena-voice", "openarena-data", "speech",
                  f"{OPENARENA_MP}{ZIP_SEPARATOR}sound/voices/*/*.ogg", r"voices/([^/]+)/"),
    PackageSource("openarena-voice", "openarena-data", "speech",
                  f"{OPENARENA_BASE}{ZIP_SEPARATOR}sound/player/announcer/*.wav", r"player/(announcer)/"),
    PackageSource("freedroid-voice", "freedroidrpg-data", "speech",
                  "/usr/share/freedroidrpg/data/sound/effects/tux_ingame_comments/*.ogg", r"effects/(tux)_ingame"),
    PackageSource("freedroid-voice", "freedroidrpg-data", "speech",
                  "/usr/share/freedroidrpg/data/sound/effects/bot_sounds/voice_samples/*.ogg",
                  r"bot_sounds/(voice)_samples"),
)
"""The "More sources" packages of DATA.md: what of each is speech or music. neverball-data holds no audio
(its music is in neverball-common, a package DATA.md does not name)."""

WORK_COMPOSERS = ("bach", "palestrina", "monteverdi", "trecento", "josquin", "beethoven", "mozart", "haydn")
WORK_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn")
N_RENDERS_V2 = 1200      # render2 units: works rendered whole, up to 40 s each (about a third fail the 16 kHz filter)
N_MIX_SCORES = 420       # mixscore units: works arranged into stems for dense mixes
N_SYNTH_KITS = 24


def _expand(pattern: str) -> list[str]:
    """Sources matching a PackageSource pattern, sorted."""
    if ZIP_SEPARATOR not in pattern:
        return sorted(glob.glob(pattern, recursive=True))
    archive, member_glob = pattern.split(ZIP_SEPARATOR, 1)
    if not os.path.exists(archive):
        return []
    members = [m for m in _archive(archive).namelist() if fnmatch.fnmatchcase(m, member_glob)]
    return [f"{archive}{ZIP_SEPARATOR}{m}" for m in sorted(members)]


def _static_prefix(pattern: str) -> str:
    """The part of a glob before its first wildcard, up to a '/' (the folder unit names are relative to)."""
    head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return head[: head.rfind("/") + 1]


def package_units() -> list[Unit]:
    """Units of the PACKAGE_SOURCES table: music one per track, speech one per voice pack."""
    tracks: list[Unit] = []
    packs: dict[str, Unit] = {}
    for src in PACKAGE_SOURCES:
        prefix = _static_prefix(src.pattern)
        for path in _expand(src.pattern):
            if src.pack is None:
                name = path[len(prefix):] if path.startswith(prefix) else os.path.basename(path)
                tracks.append(Unit(f"{src.family}/{name}", src.kind, src.package, [path]))
                continue
            match = re.search(src.pack, path)
            uid = f"{src.family}/{match.group(1) if match else 'other'}"
            packs.setdefault(uid, Unit(uid, src.kind, src.package, [], concat=True)).files.append(path)
    return tracks + [packs[k] for k in sorted(packs)]


@lru_cache(maxsize=1)
def _work_pool() -> tuple[str, ...]:
    """music21 corpus works for render2 and mixscore units: composers interleaved, each shuffled by a fixed
    seed, the works of the first corpus's renders left out (so no work is on both sides)."""
    try:
        from music21 import corpus as m21
    except ImportError:
        return ()
    taken = {work_name(p) for p in corpus._render_works()}
    lists = []
    for composer in WORK_COMPOSERS:
        by_name: dict[str, str] = {}
        for p in sorted(str(p) for p in m21.getComposer(composer)):
            if p.lower().endswith(WORK_SUFFIXES) and work_name(p) not in taken:
                by_name.setdefault(work_name(p), p)        # one file per work (.mxl before .xml)
        paths = [by_name[name] for name in sorted(by_name)]
        random.Random(f"works:{composer}").shuffle(paths)
        lists.append(paths)
    pool = []
    for i in range(max(map(len, lists), default=0)):
        pool += [paths[i] for paths in lists if i < len(paths)]
    return tuple(pool)


def work_name(path: str) -> str:
    """A work's name inside the music21 corpus: `bach/bwv1.6`, `haydn/opus1no1/movement1`."""
    parts = path.replace(os.sep, "/").split("/corpus/", 1)[-1]
    return os.path.splitext(parts)[0]


def generated_units() -> list[Unit]:
    """render2, mixscore and synthkit units (deterministic)."""
    pool = _work_pool()
    mix_works = pool[2::3][:N_MIX_SCORES]          # every third work: each list keeps the composer mix
    render_works = [w for i, w in enumerate(pool) if i % 3 != 2][:N_RENDERS_V2]
    renders = [Unit(f"render2/{work_name(w)}", "music", "music21+fluidsynth", [w]) for w in render_works]
    scores = [Unit(f"mixscore/{work_name(w)}", "mix", "music21+fluidsynth", [w]) for w in mix_works]
    kits = [Unit(f"synthkit/{k:02d}", "drums", "synthetic-drums", []) for k in range(N_SYNTH_KITS)]
    return renders + scores + kits


def all_units() -> list[Unit]:
    """Every unit of data v2: the first corpus's, the packages', the generated ones."""
    return corpus.list_units() + package_units() + generated_units()

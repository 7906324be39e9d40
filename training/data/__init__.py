"""Data v2: clean audio that looks like what users have (issue 23, item 1).

`python -m training.data build [--root data/v2] [--workers N] [--hours H]` builds, resumably and
reproducibly (seeds from names, never from time):
1. a clean corpus at 48 kHz from the packages DATA.md lists (speech, music, drum patterns), filtered as
   DATA.md says, trimmed, in 5-10 s segments; stereo kept for music, speech mono;
2. dense mixes built from stems (rendered parts, drums, a "vocal" line of speech, sometimes a soundtrack
   bed), bus-compressed and limited near 0 dBFS; the validation side's first works make the held-out
   dense-mix test set (split "test");
3. speech augmented (speed, pitch, formants, EQ tilt, small rooms) as extra segments;
4. the split by source unit, training/data/split_v2.json (training/split.json's sides kept);
5. data/v2/manifest.json and a summary table.
Codec pairs are made by the training loop from the manifest, drawing conditions from conditions.py.

Modules: sources (units), split, audio (decoding, filters, storage), dsp, augment, stems, mixes, build
(jobs, manifest), conditions (the codec conditions), digest (which jobs or pairs a rebuild made
differently). SOURCES.md surveys the sources.
"""

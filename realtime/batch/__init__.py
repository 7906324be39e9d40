"""Batch restore (`gapfill restore IN... -o OUTDIR`): whole folders restored in parallel, resumably.

Plan (plan.py): the inputs (files; folders with `recursive`, whose audio files are those with an
AUDIO_SUFFIXES suffix; the lines of a list file) become one `FileTask` per file. Each output lies at
OUTDIR/<the input's path below the inputs' common folder>, with the suffix of the output format
(`a/b/x.mp3` -> `OUTDIR/b/x.flac` for inputs `a/b` and `a/c`). Two inputs with the same output, or an
output that is an input, stop the run before it starts.

Complete outputs are skipped (sidecar.py): beside each output `NAME` lies a sidecar `.NAME.gapfill.json`,
written with `complete: false` before restoring and `complete: true` (with the output's size) only after
`restore_file` has renamed the finished output into place. An output is complete when its sidecar is
complete and still matches the input's size and mtime, the output's size and the engine fingerprint
(engine_spec.py: the model file's bytes, the effective config, gapfill's version and the output options).
An output without any sidecar was not written by a batch: it is reported and left alone unless `force`.

Interrupted runs: outputs and sidecars are written under a hidden temporary name and renamed when
complete (`realtime.atomic`), so an output is complete or absent; temporary files left by a killed
worker are removed before its output is restored again (worker.py).

Run (run.py): the tasks, longest first, go to `jobs` local worker processes (localpool.py) or to a Dask
cluster (cluster.py), which both run `worker.restore_task`; every worker builds one `Restorer`
(model.threads 1) and reuses it for every file. One file that cannot be restored is reported as one line
and the others go on; progress.py draws the progress, report.py writes the summary line and `--report`.

Modules depend one way: run -> localpool, cluster, plan, report -> worker -> sidecar, engine_spec.
"""

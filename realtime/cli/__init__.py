"""The `gapfill` command: `main.py` builds the parser, one module per subcommand, shared argument types
and messages; light to import, so that `--help` and usage errors load neither numpy nor the engine."""

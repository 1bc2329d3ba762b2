"""The commands as a library, the same verbs as the CLI: `convert` (and its dry run,
`preview`), `query`, `explain` and `demo`. cli.py is a thin layer over these.

A conversion's data path, top to bottom, is convert.py: definition -> source -> run -> output.
"""

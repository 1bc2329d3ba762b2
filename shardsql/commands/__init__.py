"""The commands as a library, the same verbs as the CLI: `convert` (and its dry run,
`preview`, with `estimates`), `show`, `query` (its output: `query_output`), `explain` and
`demo`. cli.py is a thin layer over these, and report.py lays out what it prints.

A conversion's data path, top to bottom, is convert.py: definition -> source -> run -> output.
"""

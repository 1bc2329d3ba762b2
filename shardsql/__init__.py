"""shardsql: Hugging Face Hub datasets into training shards for autoresearch or nanochat, one SQL file per dataset.

The data's path, top to bottom: definition/ (what a dataset means) -> source/ (what is read,
through hub/) -> run/ (where the work runs) -> output/ (shards, manifest, cache folder);
commands/ wires them into the verbs that cli.py offers, and report.py lays out what they print.
"""

__version__ = "0.1.0"

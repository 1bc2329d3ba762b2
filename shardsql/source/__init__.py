"""Source parquet files, read lazily: only the footers, columns and row groups needed.

- `files`: a source listed at a pinned revision (Hub, local or any fsspec URL), exact range reads;
- `footers`: parquet footers (`files.ParquetFooter`), read once per file and kept on the source;
- `schemas`: one schema for files that differ in small ways;
- `scan`: what to read of a source (`Scan`), and the one way to open it (`open_scan`);
- `units`: the source split into units of row groups, with their merged byte ranges;
- `decode`: a unit's ranges fetched and decoded, the one way every reader does;
- `sparse`: the file Polars decodes a unit's text from (a remote one's sparse copy), scanned once a file.
"""

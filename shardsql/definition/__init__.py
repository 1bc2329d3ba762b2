"""What a dataset means: its `.sql` file, parsed, analysed and evaluated by DuckDB.

- `model`: what a `.sql` file reads as: its `Header` and, for a dataset, its `Definition`;
- `catalog`: the `.sql` files (a strict `-- key: value` header, then one SELECT) as `Definition`s;
- `mixture`: a `.sql` file whose header mixes datasets by weight (`-- mix:`) as a `Mixture`;
- `statement`: one SELECT, parsed by DuckDB itself, errors at file and line;
- `analysis`: the parse tree read: which path a definition takes (`Shape`), the columns it reads;
- `sandbox`: the one locked-down DuckDB connection that every definition and query runs in;
- `evaluator`: a definition evaluated on source rows (`Evaluator`).
"""

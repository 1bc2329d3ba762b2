-- description: GitHub Code Clean (Python): 645K deduplicated Python files, all licenses
-- source: hf://datasets/codeparrot/github-code-clean/Python-all/partial-train/*.parquet
-- revision: refs/convert/parquet
-- notes: the source column is `code`; it is written as `text`

SELECT code AS text
FROM source
WHERE code IS NOT NULL
  AND length(code) >= 50

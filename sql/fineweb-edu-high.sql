-- description: FineWeb-Edu (score >= 3): highest-quality educational subset
-- source: hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet
-- revision: main
-- notes: a row with no int_score is kept, as the original convert_dataset.py keeps it

SELECT text
FROM source
WHERE (int_score IS NULL OR int_score >= 3)
  AND text IS NOT NULL
  AND length(text) >= 50

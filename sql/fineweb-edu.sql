-- description: FineWeb-Edu: 1.3T tokens of educationally-scored web text (10BT sample)
-- source: hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet
-- revision: main

SELECT text
FROM source
WHERE text IS NOT NULL
  AND length(text) >= 50

-- description: FineWeb: unfiltered web crawl, 10BT sample (no quality scoring; compare with fineweb-edu)
-- source: hf://datasets/HuggingFaceFW/fineweb/sample/10BT/*.parquet
-- revision: main

SELECT text
FROM source
WHERE text IS NOT NULL
  AND length(text) >= 50

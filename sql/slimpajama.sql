-- description: SlimPajama-6B: 6B tokens from deduplicated RedPajama (C4, Wikipedia, Books, ArXiv, Code)
-- source: hf://datasets/DKYoon/SlimPajama-6B/default/train/*.parquet
-- revision: refs/convert/parquet

SELECT text
FROM source
WHERE text IS NOT NULL
  AND length(text) >= 50

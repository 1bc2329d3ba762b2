-- description: SlimPajama-627B: full deduplicated RedPajama (627B tokens, 7 sources)
-- source: hf://datasets/gmongaras/SlimPajama-627B_Reupload/default/train/*.parquet
-- revision: refs/convert/parquet

SELECT text
FROM source
WHERE text IS NOT NULL
  AND length(text) >= 50

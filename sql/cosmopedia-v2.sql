-- description: Cosmopedia v2: 39M synthetic textbooks/blogposts by Mixtral (from SmolLM-Corpus)
-- source: hf://datasets/HuggingFaceTB/smollm-corpus/cosmopedia-v2/train-*-of-00104.parquet
-- revision: main

SELECT text
FROM source
WHERE text IS NOT NULL
  AND length(text) >= 50

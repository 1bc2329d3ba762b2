-- description: PubMed Abstracts: 27.7M biomedical/scientific abstracts from PubMed
-- source: hf://datasets/uiyunkim-hub/pubmed-abstract/default/train/*.parquet
-- revision: refs/convert/parquet
-- notes: the source column is `abstract`; it is written as `text`

SELECT abstract AS text
FROM source
WHERE abstract IS NOT NULL
  AND length(abstract) >= 50

"""What a conversion writes and keeps: shards, their record, and the cache folder they live in.

- `text_check`: every text headed for a shard is what prepare.py can read (no NULL, valid UTF-8);
- `shards`: a stream of kept rows cut into exact shards, written by Polars, the validation shard pinned;
- `staging`: a shuffled conversion's selection on disk (keys, formats, piles, selection, order);
- `checkpoint`: where an interrupted conversion resumes;
- `manifest`: the `manifest.json` record of how the shards were made;
- `cache_dir`: a consumer's cache folder (autoresearch's, nanochat's): the lock, staging, labelled
  backups, the swap, restore;
- `verify`: a data folder checked against its manifest and against what its consumer needs.
"""

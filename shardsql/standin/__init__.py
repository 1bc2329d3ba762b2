"""Stand-ins for what shardsql talks to, shared by the tests, the demo and the benchmark.

- `hub/`: a local Hugging Face Hub (`HubStandIn`), spoken to by the real huggingface_hub client;
- `samples`: small generated parquet files shaped like each built-in dataset's source.
"""

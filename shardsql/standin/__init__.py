"""Stand-ins for what shardsql talks to, shared by the tests, the demo and the benchmark.

- `hub/`: a local Hugging Face Hub (`HubStandIn`), spoken to by the real huggingface_hub client;
- `samples`: generated parquet files shaped like each built-in dataset's source: short texts
  for the tests, or (`texts`) the real sets' lengths and forms for the demo.
"""

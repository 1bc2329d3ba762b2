"""The Hugging Face Hub: every use of huggingface_hub is in this package.

- `urls`: `hf://` URLs (repo, revision, path glob);
- `client`: huggingface_hub's shared HTTP client with our timeouts; the one adapter to its private parts;
- `repo`: a repo at a pinned commit: revision resolved, files listed, errors a person can act on;
- `reader`: exact byte ranges, the answer checked before its body is read;
- `retries`: which failures are transient, backoff, and rate-limit waits (for every source's reads).
"""

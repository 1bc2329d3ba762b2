"""The Ray engine (`--engine ray`): the driver (driver.py), its tasks (tasks.py), and the one
adapter to Ray's private parts (adapter.py). Ray is an optional extra, loaded only here."""

"""Where work runs: executors that run a definition over the source's units, in order.

- `executor`: what every executor offers (`Executor`, a Protocol) and records (`RunRecord`);
- `scheduling`: units fetched ahead and run in parallel with results in order, and the limits on it;
- `unit`: one unit's work, the same on every executor: decode, evaluate, check the text;
- `local`: this machine's threads (the default engine), and the whole-source stream;
- `ray/`: the Ray engine's driver and tasks (an optional extra); the only code that touches Ray.
"""

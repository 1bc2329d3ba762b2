"""`python -m shardsql`: the command line."""

from .cli import main

main()

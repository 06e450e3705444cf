"""`python -m benchmarks`: the benchmark program (see benchmarks/run.py)."""

from benchmarks.run import main

main()

"""mispec benchmarks (``make bench`` → ``benchmarks/run_all.py``); not part of ``make test``."""

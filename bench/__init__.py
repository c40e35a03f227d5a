"""Benchmarks: the gateway's own cost, measured side by side with a direct call.

`python -m bench` (or `make bench`) starts the Gemini emulator, the gateway and, for the
cache-hit case, nginx on free loopback ports, runs every case direct and through the
gateway in alternation, prints one table and writes it to `bench/results.md`.
"""

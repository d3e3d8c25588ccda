"""Benchmarks the project documents (docs/), each a command: `eiplane bench ...`."""

"""Converters from public dialogue datasets to the generic webhook format, with labels.

Each converter is a module run as `python -m evaluation.convert_<name> RAW OUT.jsonl`; the raw
extracts are not part of this repository, the converted files under `evaluation/data/` are.
"""

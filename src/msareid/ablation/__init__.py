"""Ablation studies: variants (rows) x seeds from one base config, with seed statistics.

- :mod:`~msareid.ablation.rows`: the rows of the paper's Tables 4 and 5 and rows of one's own.
- :mod:`~msareid.ablation.stats`: mean, std and paired differences with intervals; the tables.
- :mod:`~msareid.ablation.runner`: runs every (row, seed) as an ordinary run folder, resumably.
"""

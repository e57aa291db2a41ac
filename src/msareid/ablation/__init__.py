"""Ablation studies: variants (rows) x seeds from one base config, with seed statistics.

- :mod:`~msareid.ablation.rows`: the row sets of the paper's tables and figures and rows of one's own.
- :mod:`~msareid.ablation.plan`: every (row, seed) with its config and folder; checks before writing.
- :mod:`~msareid.ablation.stats`: mean, std and paired differences with intervals; the tables.
- :mod:`~msareid.ablation.folders`: the state of each run folder, its config and its eval.json.
- :mod:`~msareid.ablation.runner`: runs every (row, seed) as an ordinary run folder, resumably.
- :mod:`~msareid.ablation.job`: one run's child process (train, then evaluate, through the library).
- :mod:`~msareid.ablation.slurm`: the same runs as a SLURM job array.
"""

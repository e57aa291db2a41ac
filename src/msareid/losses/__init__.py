"""Losses: image-level (ISQ, L_SSL, L_SSL+) and feature-level (triplets, ID). The objective that
combines them into a training step's terms is :mod:`msareid.systems.objective`."""

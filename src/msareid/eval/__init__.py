"""Evaluation: ranking metrics (NumPy only), protocols, and the driver from features to results."""

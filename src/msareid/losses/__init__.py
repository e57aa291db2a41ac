"""Losses: image-level (ISQ, L_SSL, L_SSL+, L_img) and feature-level (triplet, ID), and the
objective that computes every term of a training step."""

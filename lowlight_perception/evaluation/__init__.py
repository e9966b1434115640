"""Evaluation: segmentation, restoration and depth metrics, offline bag evaluation and reports."""

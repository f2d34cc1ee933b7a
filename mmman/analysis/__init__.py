"""Representation analysis of local learning (the seeds' Figs. 4 and 5).

``block_features`` extracts the output of every local block of a trained
model, ``linear_probe_accuracy`` measures how linearly separable they are and
``linear_cka`` how similar they are to another model's; ``write_block_report``
writes a per-block comparison as JSON, a markdown table and a plot.
"""
from .features import (BlockFeatures, block_features, block_output_units,
                       collect_block_features,
                       load_trained_model, split_dataloader)
from .probes import linear_cka, linear_probe_accuracy
from .report import write_block_report

__all__ = [
    'BlockFeatures', 'block_features', 'block_output_units',
    'collect_block_features', 'linear_cka',
    'linear_probe_accuracy', 'load_trained_model', 'split_dataloader',
    'write_block_report'
]

"""Gradient Health: diagnoses vanishing/exploding gradients and prescribes verified remedies."""

__version__ = "0.1.0"

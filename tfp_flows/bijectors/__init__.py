"""Bijectors that TFP lacks, one per module. Each is a `tfb.Bijector` subclass."""

__all__ = []

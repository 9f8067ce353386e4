"""Scipion viewers of faml_tomo."""

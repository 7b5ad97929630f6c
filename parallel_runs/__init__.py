"""Parallel Runs connector: an async client for ComfyUI servers, usable outside ComfyUI."""

__version__ = "0.1.0"

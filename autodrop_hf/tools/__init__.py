"""Command-line tools: ``autodrop-hf plot`` and the ``autodrop-hf`` entry point."""

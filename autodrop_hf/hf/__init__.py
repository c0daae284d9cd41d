"""Hugging Face adapters: training arguments, the Trainer callback and Trainer subclasses. They drive
:class:`~autodrop_hf.AutoDrop` and hold no part of the algorithm."""

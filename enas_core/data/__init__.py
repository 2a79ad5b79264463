"""Datasets: `ImageDataset` (base.py) for image tasks, `CorpusDataset` (ptb.py) for language
models, and `load_dataset(name, data_dir, seed)` (loading.py) to load any of them by name.

Importing this package does not import any loader: each is imported when first used.
"""

"""Datasets: `ImageDataset` (base.py) for image tasks, `CorpusDataset` (ptb.py) for language
models, `load_dataset(name, data_dir, seed)` (loading.py) to load any of them by name, and
`DatasetError` (errors.py), what every loader raises.

Importing this package does not import any loader: each is imported when first used.
"""

"""Data: reading Kvasir-SEG-style folders and zips, splits, augmentation, the decoded cache, synthetic polyps."""

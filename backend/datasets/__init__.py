"""Dataset uploads: validation and reading of zip archives (ImageFolder or the authors' CSV manifest)."""

"""Catalog: full and incremental sync passes, sync runs and their jobs, dry-run change lists."""

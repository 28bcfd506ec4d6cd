"""Catalog: full sync passes, sync runs and their jobs, dry-run change lists, and sellable stock levels."""

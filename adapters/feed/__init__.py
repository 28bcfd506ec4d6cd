"""Product-feed adapter: a merchant's catalog and stock read from a CSV, TSV, JSON Lines or JSON feed."""

"""Live shopping: sessions and pinned products with flash-sale allocation."""

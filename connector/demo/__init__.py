"""`storelink demo` and `storelink sandbox`: the whole product shown working against the store emulators.

One module per group of steps: `services` (data directory, Redis, database, emulators, `storelink up`),
`stores` (a Shopify install through OAuth, a Walmart seller connected with keys, a product feed, their
catalogs synced), `creators` (a commission program, creators' links and clicks, showcases), `live` (a flash
sale raced by simulated buyers), `orders` (orders pushed to the stores, fulfilled and refunded there,
commission approved and paid), `summary` (the figures, read back from the database, the stores and the
platform receiver). `steps` runs them one by one with progress; `command` holds the CLI commands, and
`sandbox` runs the emulators alone. The core never imports this package.
"""

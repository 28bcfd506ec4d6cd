"""Storelink's core, one package per area, each importing only the ones below it:

`support` > `orders` > `live` > `stock` > `merchants` > `catalog` > `infra` > `domain`; above them the Platform
API (`api`), the web modules (`web`), the CLI (`cli`) and the composition roots (`app`, `worker`, `scheduler`,
`supervisor`); beside them the store emulators (`sandbox`) and the benchmarks (`bench`), which nothing in the
core imports.
"""

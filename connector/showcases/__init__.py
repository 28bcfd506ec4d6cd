"""Showcases: ordered product sets of a merchant or a creator, by hand or by rule, read with live price and
sellable stock, and announced to the platform when what a viewer sees changes."""

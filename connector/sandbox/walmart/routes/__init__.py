"""The Walmart emulator's endpoint families, each registering its routes on the emulator's Flask app."""

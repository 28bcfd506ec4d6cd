"""Storelink's core: domain, storage, services, jobs, events, web app, CLI and the composition roots."""

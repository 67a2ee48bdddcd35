"""HTTP: the aiohttp app, Copr-compatible /api_3, native /api, results and pages."""

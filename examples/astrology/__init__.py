"""An astrology API (FastAPI) rebuilt on buttress.

The seed service wrote by hand: WebSocket progress for batch jobs and per-reading channels with JWT, query
tracking with index advice, reads through a replica router, cache warming at startup and by an admin
endpoint with analytics, profiler and breaker admin endpoints, and errors with codes and context in
development mode. Here buttress's jobs, realtime router, query tracker and index advisor, replica router,
cache warmers and stats, HTTP client with breakers, profiler, ops routes and problem+json errors do that
work; see README.md.
"""

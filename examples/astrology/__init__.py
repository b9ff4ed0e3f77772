"""An astrology API (FastAPI) rebuilt on buttress.

The seed service wrote by hand: a WebSocket broadcaster for batch progress with its own token check, a
thread-and-dict batch runner, timing decorators and a slow-query log, a primary/replica session switch, a
startup cache-fill script with hit counters, a retry loop around the ephemeris API, and an error middleware.
Here buttress's jobs, realtime router, query tracker and index advisor, replica router, cache warmers and
stats, HTTP client with breakers, profiler, ops routes and problem+json errors do that work; see README.md.
"""

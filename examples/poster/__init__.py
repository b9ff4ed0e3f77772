"""A social-media poster on buttress: two networks, named daily schedules, startup checks, a retrying client.

The seed app wrote about 700 lines by hand for this: a cron loop with its own lock file, a retry loop
around requests with sleeps, a key check per network, a connectivity probe, and a logger that printed
headers. Here the schedules are ``@schedule`` jobs (one fire, one job, however many workers run), the
retries are a per-host policy of the pooled ``buttress.http`` client, the key check is
``required_settings_check`` and the probes are ``http_check`` in a ``HealthRegistry``.
"""

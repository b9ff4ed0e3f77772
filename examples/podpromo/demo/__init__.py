"""``make demo``: the podpromo app, two worker processes and fault-injecting services, with a worker killed.

``python -m examples.podpromo.demo`` (what ``make demo`` runs from the repository's root) starts three
services on loopback (a flaky transcriber, a rate-limited clip cutter, a dead thumbnailer), the podpromo
app with buttress's ops server and dashboard, and two ``python -m examples.podpromo worker`` processes
with a short job lease. It uploads a seeded batch of episodes (and a few uploads the files helper
refuses), follows the jobs live, SIGKILLs one worker while it runs a job, and reports what every layer
did: jobs by outcome, retries, breaker openings, limiter waits, cache hits, statements and index advice,
storage and quota, and what the kill cost. Embedded defaults unless ``BUTTRESS_REDIS_URL`` or
``BUTTRESS_DATABASE_URL`` say otherwise; ``--redis`` starts a throwaway ``redis-server`` and kills it too.
"""

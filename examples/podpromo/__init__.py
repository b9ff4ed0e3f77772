"""podpromo: a podcast clip tool on buttress.

The seed service wrote by hand a multipart upload handler with its own size check and per-show quota
counter, a priority queue in a table polled by a worker loop (with a "stuck job" cron to reset rows), a
requests session with hand-rolled retries per vendor, row-by-row inserts of the clips, and a nightly
shell script that gzipped old uploads. Here each of those is one buttress call: ``Uploads`` (size, type,
quota), ``@job`` on a bounded, limited queue (leases recover a dead worker's jobs), ``buttress.http``
policies per host, ``Database.abulk_upsert`` and ``schedule_cleanup``.
"""

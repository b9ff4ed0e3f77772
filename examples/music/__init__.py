"""A music-analytics service on buttress: listening events in bulk, cached summaries, a wired container.

The seed app wrote about 1,200 lines by hand for this: a service locator with module globals and its own
"request scope", a Redis cache wrapper with a dict fallback and a decorator, a chunked INSERT loop, and a
summary cache invalidated by hand (and sometimes not). Here the lifetimes are ``buttress.container``'s,
the cache is ``buttress.cache`` (memory, or Redis with a local fallback, by configuration), the writes are
``db.bulk_insert`` and the summary is ``db.cached``, invalidated by every committed write.
"""

"""A content summariser rebuilt on buttress: fetch pages, summarise them with an LLM, store the summaries.

The seed service wrote its production layer by hand: per-domain circuit breakers, a tokens-per-minute
limit where a call costs its tokens, retried batch writes, pagination, token and cost counting, and a
dry-run command with a progress bar. Here each is buttress's public API: the HTTP client's per-host
policies, a ``RateLimiter`` acquired with ``cost=``, ``Database.bulk_upsert`` (each batch one retried
transaction), ``Database.paginate`` (keyset pages), counters in the metrics registry, and typer + rich.
"""

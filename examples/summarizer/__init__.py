"""A content summariser rebuilt on buttress: fetch pages, summarise them with an LLM, store the summaries.

The seed service wrote its production layer by hand: a dict of per-domain failure counters standing in for
circuit breakers, a sleep loop that guessed how many tokens were left this minute, retry loops around its
INSERTs, OFFSET pagination, ad-hoc token and cost tallies, and a dry-run flag threaded through every
function. Here each of those is one buttress call: the HTTP client's per-host policies, a weighted
``RateLimiter`` (a call costs its tokens), ``Database.bulk_upsert`` (each batch one retried transaction),
``Database.paginate`` (keyset pages), counters in the metrics registry, and a typer + rich CLI.
"""

"""Load: simulated participants doing whole sessions against uvicorn + PostgreSQL, all on loopback.

    .venv/bin/python -m benchmarks.load --participants 200 [--postgres-url URL] [--workers 2] [--think-ms 3000]

What it does, in one run:

1. creates a schema `bench_<random>` in the PostgreSQL of `--postgres-url` (default: `$SIPAT_BENCH_POSTGRES_URL`,
   else `$SIPAT_TEST_POSTGRES_URL`), migrates it, seeds a dataset, a stimulus set and an open study; the
   schema is dropped at the end (also after a failure or Ctrl-C);
2. starts the service with uvicorn in a subprocess on 127.0.0.1 and a free port (`--workers` processes), and
   a bare FastAPI app (one trivial sync endpoint, the same uvicorn settings) on another port;
3. runs `--participants` simulated participants at once (asyncio, one keep-alive connection each): each creates a
   session, then loops `next` -> image -> `response` (or `annotation` with a small PNG mask) until done,
   waiting a human-like think time between trials (`--think-ms`, uniform 0.5x..1.5x; 0 = as fast as possible).
   503s (Retry-After) and connection errors are retried with a bounded backoff, as the study page does;
4. meanwhile a fixed-rate probe sends `GET /ping` to the bare app, so its latency is measured under the same
   machine load; then the bare app alone at the same concurrency;
5. prints throughput and p50/p99 per endpoint and their ratio to the bare endpoint, then checks in the
   database that every acknowledged answer (2xx) is stored exactly once with the values sent, and prints
   lost / duplicated / altered counts. Exit status 1 if any answer is lost, duplicated or altered.

Everything stays on 127.0.0.1; every loop is bounded in count and time (`--max-seconds`).

The package, one screen each: `service` (the schema, the seeded study, the service's settings), `bare` (the
baseline app), `client` (the keep-alive connection, the retry policy, the counts), `crowd` (the participants,
the probe, the bare run), `report` (percentiles, tables, the exactly-once check, CPU, profiling) and `__main__`
(the flags and the run). The participant itself is `tests.simulated_participant.take_part`, shared with the
fault tests.
"""

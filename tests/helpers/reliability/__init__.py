"""The reliability harness: kill-and-rerun scenarios, the downloader under network faults,
and the bad-input corpus. The tests run them; ``python -m bench.reliability.report``
counts them into docs/reliability.md."""

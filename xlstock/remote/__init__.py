"""The stock-service client on requests: timeouts, retries, ETag, idempotency keys."""

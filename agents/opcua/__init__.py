"""OPC-UA: the subscribe/poll driver, status-code mapping and application certificates."""

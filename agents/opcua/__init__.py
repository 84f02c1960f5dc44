"""OPC-UA: the subscribe/poll driver, its session, nodes and subscription, status-code mapping,
server trust and application certificates."""

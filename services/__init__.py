"""The four gRPC services (identity, records, monitoring, alerts), each its own process."""

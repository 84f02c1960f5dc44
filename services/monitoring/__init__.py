"""The monitoring service: every reading from NATS into time-series storage, and the answers
the IOC asks for (latest values, ranges, live streams, device health, field KPIs)."""

"""The alerts service: rules on the telemetry stream, the alert lifecycle, and receivers."""

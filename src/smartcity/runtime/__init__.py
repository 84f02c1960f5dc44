"""What every smartcity process shares: configuration, logging, OpenTelemetry, the embedded
NATS server, the bus client and the gRPC bootstrap."""

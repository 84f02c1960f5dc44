"""Edge agents that read field devices over Modbus and OPC-UA and publish to NATS."""

"""Modbus TCP/RTU: the read planner, the register codec, the async driver and its transport."""

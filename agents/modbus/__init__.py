"""Modbus TCP/RTU: the read planner, the register codec and the async driver."""

"""Generated code of the ``smartcity.monitoring.v1`` API; do not edit.

Source: ``proto/smartcity/monitoring/v1/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

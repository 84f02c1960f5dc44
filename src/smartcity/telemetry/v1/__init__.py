"""Generated code of the ``smartcity.telemetry.v1`` API; do not edit.

Source: ``proto/smartcity/telemetry/v1/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

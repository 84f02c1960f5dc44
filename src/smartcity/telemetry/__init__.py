"""Generated code of the ``smartcity.telemetry`` API; do not edit.

Source: ``proto/smartcity/telemetry/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

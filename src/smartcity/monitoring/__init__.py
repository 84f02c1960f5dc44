"""Generated code of the ``smartcity.monitoring`` API; do not edit.

Source: ``proto/smartcity/monitoring/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

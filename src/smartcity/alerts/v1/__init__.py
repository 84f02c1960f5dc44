"""Generated code of the ``smartcity.alerts.v1`` API; do not edit.

Source: ``proto/smartcity/alerts/v1/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

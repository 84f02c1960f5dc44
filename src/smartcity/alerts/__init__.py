"""Generated code of the ``smartcity.alerts`` API; do not edit.

Source: ``proto/smartcity/alerts/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

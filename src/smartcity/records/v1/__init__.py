"""Generated code of the ``smartcity.records.v1`` API; do not edit.

Source: ``proto/smartcity/records/v1/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

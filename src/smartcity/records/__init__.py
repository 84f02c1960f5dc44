"""Generated code of the ``smartcity.records`` API; do not edit.

Source: ``proto/smartcity/records/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

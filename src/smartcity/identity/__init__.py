"""Generated code of the ``smartcity.identity`` API; do not edit.

Source: ``proto/smartcity/identity/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

"""Generated code of the ``smartcity.identity.v1`` API; do not edit.

Source: ``proto/smartcity/identity/v1/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

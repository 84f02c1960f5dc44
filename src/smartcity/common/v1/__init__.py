"""Generated code of the ``smartcity.common.v1`` API; do not edit.

Source: ``proto/smartcity/common/v1/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

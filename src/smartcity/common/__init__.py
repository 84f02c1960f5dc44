"""Generated code of the ``smartcity.common`` API; do not edit.

Source: ``proto/smartcity/common/``. Change the .proto files there and run
``python tools/protos.py generate``.
"""

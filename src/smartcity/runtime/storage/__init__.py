"""Storage plumbing the services share: failures told apart by what a caller can do about
them, URL masking, keyset page tokens, versioned SQL migrations, and the two backends'
connection handling (:mod:`.sqlite`, :mod:`.postgres`). Each service keeps its own tables,
queries and store interface; nothing here knows about them."""

from smartcity.runtime.storage.errors import (
    InvalidQuery,
    StoreError,
    StoreUnavailable,
    error_chain,
    mask_url,
)

__all__ = ["InvalidQuery", "StoreError", "StoreUnavailable", "error_chain", "mask_url"]

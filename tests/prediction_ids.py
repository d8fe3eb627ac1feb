"""The key tests mint prediction ids with: this process's own (functions.inference.id_keys.LOCAL_KEYS), which an
app built without a key secret verifies, so the ids tests mint are the ones the API would have served."""

from __future__ import annotations

from functions.inference.id_keys import LOCAL_KEYS

ID_KEY = LOCAL_KEYS.minting()

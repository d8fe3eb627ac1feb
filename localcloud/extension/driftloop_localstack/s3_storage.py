"""S3 object storage under the LocalStack instance's own directory.

LocalStack 2026.3.0's S3 provider keeps object bytes under a hard-coded ``/tmp/localstack-s3-storage``
(``localstack.services.s3.provider.DEFAULT_S3_TMP_DIR``), shared by every instance on the machine: two instances
see each other's bucket directories, and stopping one deletes the other's. This module registers the same
provider with its own storage root, as an alternative S3 provider (plux entry point ``s3:driftloop`` in the group
``localstack.aws.provider``), selected with ``PROVIDER_OVERRIDE_S3=driftloop``.

The root is ``DRIFTLOOP_S3_STORAGE_DIR`` (``localcloud/cloud.py`` sets ``<instance>/s3``) or else
``s3-storage`` under LocalStack's own per-instance temporary directory (``config.dirs.tmp``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from localstack import config
from localstack.services.plugins import Service, aws_provider

PROVIDER_NAME = "driftloop"
STORAGE_VARIABLE = "DRIFTLOOP_S3_STORAGE_DIR"


def storage_dir() -> Path:
    configured = os.environ.get(STORAGE_VARIABLE)
    return Path(configured) if configured else Path(config.dirs.tmp) / "s3-storage"


@aws_provider(api="s3", name=PROVIDER_NAME)
def s3_instance_storage() -> Any:
    from localstack.services.s3.provider import S3Provider
    from localstack.services.s3.storage.ephemeral import EphemeralS3ObjectStore

    root = storage_dir()
    root.mkdir(parents=True, exist_ok=True)
    return Service.for_provider(S3Provider(storage_backend=EphemeralS3ObjectStore(str(root))))

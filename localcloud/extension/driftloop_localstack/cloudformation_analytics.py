"""CloudFormation resource providers for ``AWS::Glue::Database``, ``AWS::Glue::Table`` and ``AWS::Athena::WorkGroup``.

LocalStack's open-source runtime has none: its CloudFormation skips such resources and reports the stack complete
without them (``localcloud/deploy.py`` now refuses such a deployment). These providers create, update
and delete them through the instance's own Glue and Athena APIs, so the resources land in the same stores the
local Athena reads (moto's Glue Data Catalog and work groups, see :mod:`driftloop_localstack.athena`): a table's
``PartitionKeys``, ``StorageDescriptor`` and ``Parameters`` (partition projection) are the ones queries see, a
work group's ``ResultConfiguration`` is where its queries' results go.

LocalStack finds them through the entry-point group ``localstack.cloudformation.resource_providers`` (a plux
``Plugin`` per type, its ``name`` the resource type). ``Ref`` gives the database, table or work group name, as on
AWS. Differences: a work group's ``State`` is not applied (moto's work groups are always ENABLED) and updating one
replaces it under the same name (moto has no UpdateWorkGroup); ``OpenTableFormatInput`` (Iceberg) is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from localstack.services.cloudformation.resource_provider import (
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)

from driftloop_localstack.cloudformation_providers import Properties, done, failed, provider_plugin


def _database_name(model: Properties) -> Any:
    return model.get("DatabaseName") or (model.get("DatabaseInput") or {}).get("Name")


def _table_name(model: Properties) -> Any:
    return model.get("Id") or (model.get("TableInput") or {}).get("Name")


class GlueDatabaseProvider(ResourceProvider[Properties]):
    """``DatabaseInput`` is Glue's CreateDatabase input; the physical id (and ``Ref``) is its ``Name``."""

    SCHEMA: Mapping[str, Any] = {
        "typeName": "AWS::Glue::Database",
        "primaryIdentifier": ["/properties/DatabaseName"],
        "createOnlyProperties": ["/properties/DatabaseName"],
    }

    def create(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state
        database = dict(model.get("DatabaseInput") or {})
        name = str(model.get("DatabaseName") or database.get("Name") or "")
        if not name:
            return failed("AWS::Glue::Database needs DatabaseInput.Name (or DatabaseName)")
        request.aws_client_factory.glue.create_database(
            CatalogId=str(model.get("CatalogId") or request.account_id), DatabaseInput={**database, "Name": name}
        )
        return done({**model, "DatabaseName": name})

    def update(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model, previous = request.desired_state, request.previous_state or {}
        glue = request.aws_client_factory.glue
        database = dict(model.get("DatabaseInput") or {})
        name = str(model.get("DatabaseName") or database.get("Name") or "")
        if name != _database_name(previous):  # a renamed database: the new one, then the old one goes
            created = self.create(request)
            if created.status == OperationStatus.SUCCESS:
                self._drop(glue, _database_name(previous))
            return created
        glue.update_database(Name=name, DatabaseInput={**database, "Name": name})
        return done({**model, "DatabaseName": name})

    def delete(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        self._drop(request.aws_client_factory.glue, _database_name(request.previous_state or request.desired_state))
        return done({})

    @staticmethod
    def _drop(glue: Any, name: Any) -> None:
        with contextlib.suppress(glue.exceptions.EntityNotFoundException):
            glue.delete_database(Name=name)


class GlueTableProvider(ResourceProvider[Properties]):
    """``TableInput`` is Glue's CreateTable input, in ``DatabaseName``; ``Ref`` gives the table's name."""

    SCHEMA: Mapping[str, Any] = {
        "typeName": "AWS::Glue::Table",
        "primaryIdentifier": ["/properties/Id"],
        "createOnlyProperties": ["/properties/DatabaseName"],
    }

    def create(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state
        if model.get("OpenTableFormatInput"):
            return failed("AWS::Glue::Table: OpenTableFormatInput (Iceberg) is not supported by the local cloud")
        table = model.get("TableInput") or {}
        if not table.get("Name") or not model.get("DatabaseName"):
            return failed("AWS::Glue::Table needs DatabaseName and TableInput.Name")
        request.aws_client_factory.glue.create_table(
            CatalogId=str(model.get("CatalogId") or request.account_id),
            DatabaseName=model["DatabaseName"],
            TableInput=table,
        )
        return done({**model, "Id": table["Name"]})

    def update(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model, previous = request.desired_state, request.previous_state or {}
        glue = request.aws_client_factory.glue
        table = model.get("TableInput") or {}
        if (model.get("DatabaseName"), table.get("Name")) != (previous.get("DatabaseName"), _table_name(previous)):
            created = self.create(request)  # a renamed (or moved) table: the new one, then the old one goes
            if created.status == OperationStatus.SUCCESS:
                self._drop(glue, previous.get("DatabaseName"), _table_name(previous))
            return created
        glue.update_table(DatabaseName=model["DatabaseName"], TableInput=table)
        return done({**model, "Id": table["Name"]})

    def delete(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.previous_state or request.desired_state
        self._drop(request.aws_client_factory.glue, model.get("DatabaseName"), _table_name(model))
        return done({})

    @staticmethod
    def _drop(glue: Any, database: Any, name: Any) -> None:
        with contextlib.suppress(glue.exceptions.EntityNotFoundException):
            glue.delete_table(DatabaseName=database, Name=name)


class AthenaWorkGroupProvider(ResourceProvider[Properties]):
    """A work group by ``Name`` with its ``WorkGroupConfiguration`` (the one StartQueryExecution applies)."""

    SCHEMA: Mapping[str, Any] = {
        "typeName": "AWS::Athena::WorkGroup",
        "primaryIdentifier": ["/properties/Name"],
        "createOnlyProperties": ["/properties/Name"],
    }

    def create(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state
        arguments: dict[str, Any] = {"Name": model["Name"], "Configuration": model.get("WorkGroupConfiguration") or {}}
        if model.get("Description"):
            arguments["Description"] = model["Description"]
        if model.get("Tags"):
            arguments["Tags"] = model["Tags"]
        request.aws_client_factory.athena.create_work_group(**arguments)
        return done(model)

    def update(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        self._drop(request.aws_client_factory.athena, str((request.previous_state or {})["Name"]))
        return self.create(request)

    def delete(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        self._drop(request.aws_client_factory.athena, str((request.previous_state or request.desired_state)["Name"]))
        return done({})

    @staticmethod
    def _drop(athena: Any, name: str) -> None:
        athena.delete_work_group(WorkGroup=name, RecursiveDeleteOption=True)


GlueDatabaseProviderPlugin = provider_plugin("AWS::Glue::Database", GlueDatabaseProvider)
GlueTableProviderPlugin = provider_plugin("AWS::Glue::Table", GlueTableProvider)
AthenaWorkGroupProviderPlugin = provider_plugin("AWS::Athena::WorkGroup", AthenaWorkGroupProvider)

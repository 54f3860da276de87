"""PostgreSQL full-text index over the search document (other databases search with a portable fallback)."""

from django.db import migrations

INDEX = "publishing_version_fts"
CREATE = (
    f"CREATE INDEX IF NOT EXISTS {INDEX} ON publishing_serviceversion "
    "USING GIN (to_tsvector('english'::regconfig, search_document))"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("publishing", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]

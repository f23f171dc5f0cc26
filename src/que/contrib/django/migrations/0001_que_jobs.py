"""que_jobs at the Que v3 schema (left as it is if Ruby or Go made it already)."""

from django.db import migrations

from que.contrib.django.schema import jobs_down, jobs_up


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [migrations.RunPython(jobs_up, jobs_down, elidable=False)]

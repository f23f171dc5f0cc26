"""The que-pg extension's tables (dead jobs, unique keys, paused queues, schedules)."""

from django.db import migrations

from que.contrib.django.schema import extension_down, extension_up


class Migration(migrations.Migration):
    dependencies = [("que", "0001_que_jobs")]
    operations = [migrations.RunPython(extension_up, extension_down, elidable=False)]

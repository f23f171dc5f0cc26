"""que_task_results: the results of Django tasks run by que (que.contrib.django.tasks)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("que", "0002_que_pg_extension"),
    ]

    operations = [
        migrations.CreateModel(
            name="TaskResultRecord",
            fields=[
                ("job_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("task_path", models.TextField()),
                ("status", models.CharField(max_length=10)),
                ("backend", models.TextField()),
                ("queue_name", models.TextField()),
                ("priority", models.SmallIntegerField()),
                ("args", models.JSONField(default=list)),
                ("kwargs", models.JSONField(default=dict)),
                ("enqueued_at", models.DateTimeField(null=True)),
                ("started_at", models.DateTimeField(null=True)),
                ("last_attempted_at", models.DateTimeField(null=True)),
                ("finished_at", models.DateTimeField(null=True)),
                ("return_value", models.JSONField(null=True)),
                ("errors", models.JSONField(default=list)),
                ("worker_ids", models.JSONField(default=list)),
            ],
            options={
                "db_table": "que_task_results",
                "indexes": [models.Index(fields=["finished_at"], name="que_task_results_finished")],
            },
        ),
    ]

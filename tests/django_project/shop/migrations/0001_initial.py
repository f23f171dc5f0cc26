from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = [("que", "0002_que_pg_extension")]
    operations = [
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("n", models.IntegerField()),
                ("shipped", models.BooleanField(default=False)),
            ],
        )
    ]

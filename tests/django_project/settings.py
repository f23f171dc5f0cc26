"""Settings of the test project: the database is the conninfo in QUE_TEST_DJANGO_DB."""

import os

from psycopg.conninfo import conninfo_to_dict

_db = conninfo_to_dict(os.environ["QUE_TEST_DJANGO_DB"])

SECRET_KEY = "test only"
USE_TZ = True
INSTALLED_APPS = ["que.contrib.django", "shop"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db["dbname"],
        "USER": _db.get("user", ""),
        "PASSWORD": _db.get("password", ""),
        "HOST": _db.get("host", ""),
        "PORT": _db.get("port", ""),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
QUE = {"DATABASE": "default"}
# Django's Tasks framework (built in since Django 6; the django-tasks backport before).
TASKS = {
    "default": {
        "BACKEND": "que.contrib.django.tasks.QueTaskBackend",
        "QUEUES": ["default", "mail"],
    }
}

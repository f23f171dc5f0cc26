"""The Django app config of que."""

from __future__ import annotations

from django.apps import AppConfig


class QueConfig(AppConfig):
    name = "que.contrib.django"
    label = "que"
    verbose_name = "que job queue"

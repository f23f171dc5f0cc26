"""que for Django: add ``"que.contrib.django"`` to INSTALLED_APPS.

``manage.py migrate`` creates que_jobs and the que-pg extension's tables;
``get_client()`` is a Client on the database named by ``QUE["DATABASE"]``;
``manage.py que_worker`` runs registered jobs with Django's connections
handled around each one; ``manage.py que`` runs any other ``que`` command
against that database. See docs/integrations.md.
"""

from __future__ import annotations

from .client import close_clients, conninfo, get_client

__all__ = ["close_clients", "conninfo", "get_client"]

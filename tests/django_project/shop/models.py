from django.db import models


class Order(models.Model):
    n = models.IntegerField()
    shipped = models.BooleanField(default=False)

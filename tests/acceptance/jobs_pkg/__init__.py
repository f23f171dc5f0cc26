"""A package of @que.job functions for `que worker tests.acceptance.jobs_pkg`:
the worker imports it and each submodule, and works every registered job."""

"""The ``relai`` command: operator tasks (users, migrations, catalog) and the dev launcher."""

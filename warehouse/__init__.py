"""The shared base database: connection, migrations, loading."""

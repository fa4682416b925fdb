-- One database per Kaenkhun service: no service reads another's tables.
-- Run once by the postgres image's entrypoint (mounted into /docker-entrypoint-initdb.d)
-- as POSTGRES_USER, who owns the databases; each service applies its own Alembic
-- migrations to its database at start (`kaenkhun migrate SERVICE`).
CREATE DATABASE registry;
CREATE DATABASE assessment;
CREATE DATABASE assistance;
CREATE DATABASE reporting;

-- ================================================================
-- FILE: init-databases.sql
-- PATH: /deploy/postgres/init-databases.sql
-- DESCRIPTION: One database per service, created when lkms501-postgres starts on an empty volume
-- ================================================================
-- Mounted into /docker-entrypoint-initdb.d by deploy/docker-compose.yml: the postgres image runs
-- it once, when it initialises an empty data volume (not on later starts). Each service's
-- migration step (lkmsNNN-<name>-migrate: alembic upgrade head) then creates its tables.
-- A new service adds its database here; on an existing volume, create it by hand:
--   docker compose -f deploy/docker-compose.yml exec lkms501-postgres createdb -U postgres <name>

CREATE DATABASE lkms101_contacts;
CREATE DATABASE lkms102_orders;

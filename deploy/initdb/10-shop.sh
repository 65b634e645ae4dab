#!/bin/sh
# Runs once, when the postgres container initialises its data directory: the sample shop, and the gateway's login
# role with only CONNECT (`gatehouse setup` gives it membership of the masking profiles, nothing more).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -c 'CREATE DATABASE shop'
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname shop -f /seed/shop.sql
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname shop -v password="$(cat /run/secrets/shop_password)" <<'SQL'
CREATE ROLE gatehouse_gateway LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'password';
REVOKE ALL ON DATABASE shop FROM PUBLIC;
GRANT CONNECT ON DATABASE shop TO gatehouse_gateway;
SQL

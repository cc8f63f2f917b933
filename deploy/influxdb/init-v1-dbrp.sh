#!/bin/sh
# Map the v1 database "citywatch" to the bucket, so CityWatch's v1-compatible /write and /query work.
set -e
influx v1 dbrp create --db citywatch --rp autogen --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" --default \
    --org "${DOCKER_INFLUXDB_INIT_ORG}" --token "${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN}"

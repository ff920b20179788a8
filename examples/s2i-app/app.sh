#!/bin/sh
# The s2i convention: app.sh is run when $APP_SCRIPT is not set.
echo "app.sh ran in $(pwd) as uid $(id -u)"

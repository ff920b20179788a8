#!/bin/sh
echo "APP_SCRIPT ran: other.sh"

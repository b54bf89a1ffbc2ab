#!/bin/sh
# Starts Alertmanager with the Discord webhook URL written into a copy of its config: the URL is a
# credential, kept out of alertmanager.yml and given as RELAI_ALERT_WEBHOOK_URL (compose: the
# shell's; Kubernetes: the Secret relai-alerts), and Alertmanager reads no environment.
# Unset, the placeholder stays: notifications fail (each failure logged), and the alerts are on
# Alertmanager's own page. Arguments are passed on to Alertmanager.
set -eu
config=${ALERTMANAGER_CONFIG:-/etc/alertmanager/alertmanager.yml}
rendered=${ALERTMANAGER_RENDERED:-/tmp/alertmanager.yml}
awk -v from="https://discord.invalid/set-RELAI_ALERT_WEBHOOK_URL" '
    {
        i = index($0, from)
        url = ENVIRON["RELAI_ALERT_WEBHOOK_URL"]
        if (i && url != "") $0 = substr($0, 1, i - 1) url substr($0, i + length(from))
        print
    }' "$config" >"$rendered"
exec "${ALERTMANAGER:-/bin/alertmanager}" --config.file="$rendered" "$@"

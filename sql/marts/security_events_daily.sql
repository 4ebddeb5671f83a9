-- description: CloudTrail security events per day: failed console logins by source IP (keyed hash), root account use, AccessDenied calls by principal and API
-- partitioned_by: day
-- unique_key: dt, kind, source_ip, principal, event_name
-- diststyle: even
-- sortkey: dt, kind
WITH events AS (
    SELECT
        dt,
        eventtime AS ts,
        eventname AS event_name,
        sourceipaddress AS source_ip,
        coalesce(useridentity_arn, useridentity_type) AS principal,
        CASE
            WHEN eventname = 'ConsoleLogin' AND responseelements_consolelogin = 'Failure'
                THEN 'failed_console_login'
            WHEN useridentity_type = 'Root' THEN 'root_account_use'
            WHEN errorcode LIKE '%AccessDenied%' OR errorcode LIKE '%Unauthorized%'
                THEN 'access_denied'
        END AS kind
    FROM cleaned.cloudtrail
),
grouped AS (
    SELECT
        dt,
        kind,
        CASE WHEN kind = 'access_denied' THEN '' ELSE coalesce(source_ip, '') END AS source_ip,
        CASE WHEN kind = 'failed_console_login' THEN '' ELSE coalesce(principal, '') END AS principal,
        event_name,
        ts
    FROM events
    WHERE kind IS NOT NULL
)
SELECT
    dt,
    kind,
    source_ip,
    principal,
    event_name,
    count(*) AS events,
    min(ts) AS first_seen_at,
    max(ts) AS last_seen_at,
    kind = 'failed_console_login' AND count(*) >= 5 AS suspected_brute_force
FROM grouped
GROUP BY dt, kind, source_ip, principal, event_name
ORDER BY dt, kind, events DESC, source_ip, principal, event_name

-- description: CloudTrail security events per day: failed console logins by source IP (keyed hash), root account use, AccessDenied calls by principal and API
-- partitioned_by: day
-- unique_key: dt, kind, source_ip, principal, event_name
-- diststyle: even
-- sortkey: dt, kind
-- not_null: dt, kind, event_name, events, first_seen_at, last_seen_at, day_complete
-- owner: team:security
-- pii: true
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
        -- NULL where a kind does not group by the value, or the record does not hold it
        CASE WHEN kind <> 'access_denied' THEN source_ip END AS source_ip,
        CASE WHEN kind <> 'failed_console_login' THEN principal END AS principal,
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
    -- raised as soon as 5 failures are seen; "no" is final only on a complete day
    CASE
        WHEN kind <> 'failed_console_login' THEN false
        WHEN count(*) >= 5 THEN true
        WHEN getvariable('day_complete') THEN false
    END AS suspected_brute_force,
    getvariable('day_complete') AS day_complete
FROM grouped
GROUP BY dt, kind, source_ip, principal, event_name
ORDER BY dt, kind, events DESC, source_ip, principal, event_name

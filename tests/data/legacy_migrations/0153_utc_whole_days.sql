-- The next whole UTC day after a moment, in the two functions that split a window into whole
-- days (the daily rollups) and hours, was `date_trunc('day', t, 'UTC') + interval '1 day'`.
-- Adding a day to a timestamptz is calendar arithmetic in the session's TimeZone: on a
-- server or connection whose zone is not UTC, across a daylight-saving change it adds 23 or
-- 25 hours, so the "whole days" read from the daily rollups no longer started at midnight
-- UTC, and a window's failures or completion times were counted twice or not at all (a test
-- with PGTZ=America/New_York and a window across 8 March found 57 events for 52). A UTC day
-- is always 24 hours.

CREATE OR REPLACE FUNCTION public.webhook_rollup_day_from(p_moment timestamptz)
RETURNS timestamptz
LANGUAGE sql
STABLE
AS $$
SELECT CASE WHEN date_trunc('day', p_moment, 'UTC') = p_moment THEN p_moment
            ELSE date_trunc('day', p_moment, 'UTC') + interval '24 hours' END
$$;

CREATE OR REPLACE FUNCTION public.registration_completion_window(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (bin smallint, registrations bigint)
LANGUAGE sql
STABLE
AS $$
WITH edges AS (
    SELECT public.webhook_rollup_full_from(p_start)           AS hour_from,
           date_trunc('hour', p_end, 'UTC')                    AS hour_to,
           CASE WHEN date_trunc('day', p_start, 'UTC') = p_start THEN p_start
                ELSE date_trunc('day', p_start, 'UTC') + interval '24 hours' END AS day_from,
           date_trunc('day', p_end, 'UTC')                     AS day_to
), days AS (
    -- No whole day: day_from = day_to = hour_to, and the hours cover everything.
    SELECT hour_from, hour_to,
           CASE WHEN day_from < day_to THEN day_from ELSE hour_to END AS day_from,
           CASE WHEN day_from < day_to THEN day_to ELSE hour_to END AS day_to
    FROM edges
)
SELECT bin, sum(registrations)::bigint
FROM (
    SELECT r.bin, r.registrations
    FROM public.registration_completion_daily r, days w
    WHERE r.bucket >= w.day_from AND r.bucket < w.day_to
    UNION ALL
    SELECT r.bin, r.registrations
    FROM public.registration_completion_rollup r, days w
    WHERE r.bucket >= w.hour_from AND r.bucket < least(w.day_from, w.hour_to)
    UNION ALL
    SELECT r.bin, r.registrations
    FROM public.registration_completion_rollup r, days w
    WHERE r.bucket >= greatest(w.day_to, w.hour_from) AND r.bucket < w.hour_to
    UNION ALL
    SELECT d.completion_bin, d.sign
    FROM public.registration_rollup_delta d
    WHERE d.bucket >= public.webhook_rollup_full_from(p_start) AND d.bucket < date_trunc('hour', p_end, 'UTC')
      AND d.completion_bin IS NOT NULL
    UNION ALL
    SELECT public.registration_completion_bin(extract(epoch FROM g.completed_at - g.created_at)::double precision), 1
    FROM public.registrations g
    WHERE g.created_at >= p_start AND g.created_at < least(public.webhook_rollup_full_from(p_start), p_end)
      AND g.processing_status = 'completed' AND g.completed_at IS NOT NULL
    UNION ALL
    SELECT public.registration_completion_bin(extract(epoch FROM g.completed_at - g.created_at)::double precision), 1
    FROM public.registrations g
    WHERE g.created_at >= greatest(date_trunc('hour', p_end, 'UTC'), public.webhook_rollup_full_from(p_start))
      AND g.created_at < p_end AND g.processing_status = 'completed' AND g.completed_at IS NOT NULL
) parts
GROUP BY 1
HAVING sum(registrations) <> 0
$$;

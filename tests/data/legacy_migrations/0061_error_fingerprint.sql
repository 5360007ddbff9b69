-- The error fingerprint, declared once for every query that groups errors (the Errors page's
-- "Top error messages" and error groups, the health report): the message with UUIDs,
-- Stripe-style ids (evt_1Nx..., cs_test_a1...), long hex strings, e-mail addresses and
-- numbers replaced by placeholders and whitespace collapsed, at most 300 characters, so
-- "timeout after 3012 ms for evt_1" and "timeout after 95 ms for evt_2" are one error.
CREATE OR REPLACE FUNCTION public.error_fingerprint(p_message text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = ''
AS $$
    SELECT left(btrim(regexp_replace(
               regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
                   p_message,
                   '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', 'gi'),
                   '\m[a-z]{2,10}_(?:[a-z]+_)?(?=[A-Za-z_]*[0-9])[A-Za-z0-9]{6,}\M', '<id>', 'g'),
                   '\m[0-9a-f]{12,}\M', '<hex>', 'gi'),
                   '[^\s<>@]+@[^\s<>@]+\.[a-z]{2,}', '<email>', 'gi'),
                   '[0-9]+(\.[0-9]+)?', '<n>', 'g'),
               '\s+', ' ', 'g')), 300)
$$;

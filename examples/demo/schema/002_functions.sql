-- The greeting comes from a deployment parameter (pgmi.yaml, --param or --params-file).
CREATE OR REPLACE FUNCTION demo.greet(who text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('pgmi.greeting', true), 'Hello') || ', ' || who || '!'
$$;

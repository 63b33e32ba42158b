-- A deleted handler keeps its row (history) but is never dispatched again.
DO $$
BEGIN
    IF api.delete_handler('4f8633a0-d71b-4dff-80c7-bd11bcc66576') IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'deleting /hello must report true';
    END IF;
    IF api.delete_handler('4f8633a0-d71b-4dff-80c7-bd11bcc66576') IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'deleting it twice must report false';
    END IF;
    IF (api.rest_invoke('GET', '/hello')).status_code IS DISTINCT FROM 404 THEN
        RAISE EXCEPTION 'a deleted route must answer 404';
    END IF;
    IF (SELECT deleted FROM api.vw_handler_info WHERE name = 'hello_world') IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'the registry must still show the deleted handler';
    END IF;
    PERFORM api.delete_handler('4fcf6e23-ea7c-4ca7-8b02-0d7af0353ca1');
    IF api.mcp_list_tools() @> '{"tools": [{"name": "greet"}]}' THEN
        RAISE EXCEPTION 'a deleted tool must not be listed';
    END IF;
END
$$;

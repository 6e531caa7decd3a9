{# A session's replay link, built like dbt_fullstory's get_replay_url_path(): the org's host,
   /ui/<org id>/session/<device id>:<session id>. In segment exports the device id is `UserId`. #}
{% macro fullstory_replay_url(user_id, session_id) -%}
    {{ dbt.concat([
        "'https://" ~ var('fullstory_replay_host') ~ "/ui/" ~ var('fullstory_org_id') ~ "/session/'",
        text(user_id), "':'", text(session_id)
    ]) }}
{%- endmacro %}

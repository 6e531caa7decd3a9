{#
  One row per page view (indv_id, session_id, page_id): a page load in a session, with the
  parts of its URL (dbt_fullstory's url_host, url_path, ...) and how long it was open and
  active. Incremental with sessions: a changed session's page views are rebuilt with it.
#}
{{ config(**fullstory_incremental_config()) }}

with changed_days as (
    {% if fullstory_is_incremental() %}
        {{ fullstory_changed_session_days('first_event_at', 'last_event_at') }}
    {% else %}
        select cast(null as date) as session_date
    {% endif %}
),

events as (
    select *
    from {{ ref('events') }}
    {% if fullstory_is_incremental() %}
        where {{ utc_date('session_start') }} in (select session_date from changed_days)
    {% endif %}
),

pages as (
    select
        indv_id,
        session_id,
        page_id,
        min({{ utc_date('session_start') }}) as session_date,
        min(page_start) as started_at,
        min(event_start) as first_event_at,
        max(event_start) as last_event_at,
        max(page_url) as url,
        max(page_referer_url) as referer_url,
        max(page_duration) as duration_ms,
        max(page_active_duration) as active_ms,
        count(*) as events,
        {{ count_where("event_type = 'click'") }} as clicks,
        {{ count_where("event_type = 'click' and event_mod_frustrated = 1") }} as rage_clicks,
        {{ count_where("event_type = 'click' and event_mod_dead = 1") }} as dead_clicks,
        {{ count_where("event_type = 'click' and event_mod_error = 1") }} as error_clicks,
        max(page_browser) as browser,
        max(page_device) as device,
        max(page_operating_system) as operating_system
    from events
    group by indv_id, session_id, page_id
),

numbered as (
    select
        pages.*,
        row_number() over (partition by indv_id, session_id order by started_at, page_id) as page_number,
        row_number() over (partition by indv_id, session_id order by started_at desc, page_id desc) as from_last
    from pages
)

select
    {{ dbt.concat([text('indv_id'), "':'", text('session_id'), "':'", text('page_id')]) }} as page_view_key,
    {{ dbt.concat([text('indv_id'), "':'", text('session_id')]) }} as session_key,
    indv_id,
    session_id,
    page_id,
    session_date,
    page_number,
    page_number = 1 as is_entry,
    from_last = 1 as is_exit,
    started_at,
    first_event_at,
    last_event_at,
    url,
    {{ url_part('url', 'host') }} as url_host,
    {{ url_part('url', 'path') }} as url_path,
    {{ url_part('url', 'query') }} as url_query,
    {{ url_part('url', 'fragment') }} as url_fragment,
    referer_url,
    {{ url_part('referer_url', 'host') }} as referer_host,
    duration_ms / 1000.0 as duration_seconds,
    active_ms / 1000.0 as active_seconds,
    events,
    clicks,
    rage_clicks,
    dead_clicks,
    error_clicks,
    browser,
    device,
    operating_system,
    {{ fullstory_newest_load_time() }} as _fullstory_loaded_at
from numbered

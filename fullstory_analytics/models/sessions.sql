{#
  One row per session (indv_id, session_id), grain and measures after dbt_fullstory's
  `sessions` model, computed from segment exports. Incremental by the day a session started
  (macros/incremental.sql).
#}
{{ config(**fullstory_incremental_config()) }}

{% set user_columns = fullstory_user_columns() %}

with changed_days as (
    {% if fullstory_is_incremental() %}
        {{ fullstory_changed_session_days() }}
    {% else %}
        select cast(null as date) as session_date
    {% endif %}
),

events as (
    select
        events.*,
        {{ utc_date('session_start') }} as session_date
    from {{ ref('events') }} as events
    {% if fullstory_is_incremental() %}
        where {{ utc_date('session_start') }} in (select session_date from changed_days)
    {% endif %}
),

-- the segments that exported any event of the session (from the loaded rows, one per segment)
session_segments as (
    select indv_id, session_id, {{ sorted_list('segment_id') }} as segments, count(distinct segment_id) as segment_count
    from {{ source('fullstory', 'events') }}
    {% if fullstory_is_incremental() %}
        where {{ utc_date('session_start') }} in (select session_date from changed_days)
    {% endif %}
    group by indv_id, session_id
),

pages as (
    select
        indv_id,
        session_id,
        page_id,
        min(page_start) as page_start,
        max(page_url) as page_url,
        max(page_referer_url) as page_referer_url,
        max(page_active_duration) as page_active_duration
    from events
    group by indv_id, session_id, page_id
),

ordered_pages as (
    select
        pages.*,
        row_number() over (partition by indv_id, session_id order by page_start, page_id) as from_first,
        row_number() over (partition by indv_id, session_id order by page_start desc, page_id desc) as from_last
    from pages
),

page_totals as (
    select
        indv_id,
        session_id,
        count(*) as page_views,
        count(distinct page_url) as unique_urls,
        {{ bigint_sum('page_active_duration') }} as active_ms,
        max(case when from_first = 1 then page_url end) as entry_url,
        max(case when from_first = 1 then page_referer_url end) as entry_referer_url,
        max(case when from_last = 1 then page_url end) as exit_url
    from ordered_pages
    group by indv_id, session_id
),

-- the session's last event: device, location and user fields as they were at its end
last_events as (
    select *
    from (
        select
            events.*,
            row_number() over (
                partition by indv_id, session_id
                order by event_start desc, event_session_offset desc, event_type desc
            ) as from_last
        from events
    ) as numbered
    where from_last = 1
),

totals as (
    select
        indv_id,
        session_id,
        min(session_date) as session_date,
        min(session_start) as started_at,
        min(event_start) as first_event_at,
        max(event_start) as ended_at,
        count(*) as events,
        {% for event_type in var('fullstory_event_types') %}
        {{ count_where("event_type = '" ~ event_type ~ "'") }} as {{ event_type }}_events,
        {% endfor %}
        {{ count_where("event_type = 'click' and event_mod_frustrated = 1") }} as rage_clicks,
        {{ count_where("event_type = 'click' and event_mod_dead = 1") }} as dead_clicks,
        {{ count_where("event_type = 'click' and event_mod_error = 1") }} as error_clicks,
        {{ count_where("event_mod_frustrated = 1 or event_mod_dead = 1 or event_mod_error = 1") }}
            as frustrated_events
    from events
    group by indv_id, session_id
)

select
    {{ dbt.concat([text('totals.indv_id'), "':'", text('totals.session_id')]) }} as session_key,
    totals.indv_id,
    totals.session_id,
    totals.session_date,
    totals.started_at,
    totals.first_event_at,
    totals.ended_at,
    {{ milliseconds_between('totals.started_at', 'totals.ended_at') }} / 1000.0 as duration_seconds,
    page_totals.active_ms / 1000.0 as active_seconds,
    page_totals.page_views,
    page_totals.unique_urls,
    page_totals.entry_url,
    page_totals.entry_referer_url,
    page_totals.exit_url,
    totals.events,
    {% for event_type in var('fullstory_event_types') %}
    totals.{{ event_type }}_events,
    {% endfor %}
    totals.rage_clicks,
    totals.dead_clicks,
    totals.error_clicks,
    totals.frustrated_events,
    last_events.user_id,
    last_events.user_app_key,
    last_events.user_display_name,
    last_events.user_email,
    {% for column in user_columns %}
    last_events.{{ column }},
    {% endfor %}
    last_events.page_device as device,
    last_events.page_platform as platform,
    last_events.page_operating_system as operating_system,
    last_events.page_browser as browser,
    last_events.page_browser_version as browser_version,
    last_events.page_user_agent as user_agent,
    last_events.page_ip as ip,
    last_events.page_lat_long as lat_long,
    session_segments.segments,
    session_segments.segment_count,
    {{ fullstory_replay_url('last_events.user_id', 'totals.session_id') }} as replay_url,
    {{ fullstory_newest_load_time() }} as _fullstory_loaded_at
from totals
inner join page_totals
    on totals.indv_id = page_totals.indv_id and totals.session_id = page_totals.session_id
inner join last_events
    on totals.indv_id = last_events.indv_id and totals.session_id = last_events.session_id
inner join session_segments
    on totals.indv_id = session_segments.indv_id and totals.session_id = session_segments.session_id

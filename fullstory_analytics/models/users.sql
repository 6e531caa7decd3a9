{#
  One row per individual (indv_id), after dbt_fullstory's `users`: first and last seen,
  totals over all sessions, identity and custom user variables as of the latest session.
  A table rebuilt from sessions (one row per session, far fewer than events).
#}
{% set user_columns = fullstory_user_columns() %}

with latest as (
    select *
    from (
        select
            sessions.*,
            row_number() over (partition by indv_id order by started_at desc, session_id desc) as from_last
        from {{ ref('sessions') }} as sessions
    ) as numbered
    where from_last = 1
),

person_segments as (
    select indv_id, {{ sorted_list('segment_id') }} as segments
    from (select distinct indv_id, segment_id from {{ source('fullstory', 'events') }}) as memberships
    group by indv_id
),

totals as (
    select
        indv_id,
        min(started_at) as first_seen_at,
        max(ended_at) as last_seen_at,
        min(session_date) as first_session_date,
        max(session_date) as last_session_date,
        count(*) as sessions,
        {{ bigint_sum('page_views') }} as page_views,
        {{ bigint_sum('events') }} as events,
        {% for event_type in var('fullstory_event_types') %}
        {{ bigint_sum(event_type ~ '_events') }} as {{ event_type }}_events,
        {% endfor %}
        -- summed as whole milliseconds: a sum of doubles depends on the order rows come in
        {{ bigint_sum('round(duration_seconds * 1000)') }} / 1000.0 as total_duration_seconds,
        {{ bigint_sum('round(active_seconds * 1000)') }} / 1000.0 as total_active_seconds,
        {{ bigint_sum('rage_clicks') }} as rage_clicks,
        {{ bigint_sum('dead_clicks') }} as dead_clicks,
        {{ bigint_sum('error_clicks') }} as error_clicks
    from {{ ref('sessions') }}
    group by indv_id
)

select
    totals.*,
    latest.user_app_key is not null as is_identified,
    latest.user_id as last_user_id,
    latest.user_app_key,
    latest.user_display_name,
    latest.user_email,
    {% for column in user_columns %}
    latest.{{ column }},
    {% endfor %}
    latest.device as last_device,
    latest.browser as last_browser,
    latest.operating_system as last_operating_system,
    latest.ip as last_ip,
    latest.lat_long as last_lat_long,
    latest.replay_url as last_replay_url,
    person_segments.segments
from totals
inner join latest on totals.indv_id = latest.indv_id
left join person_segments on totals.indv_id = person_segments.indv_id

{#
  One row per UTC day: who was active and what they did, counted by the day each session
  started (a session past midnight counts on the day it began).
#}
with sessions as (
    select * from {{ ref('sessions') }}
),

first_days as (
    select indv_id, min(session_date) as first_session_date
    from sessions
    group by indv_id
)

select
    sessions.session_date as activity_date,
    count(distinct sessions.indv_id) as active_users,
    count(distinct case when first_days.first_session_date = sessions.session_date then sessions.indv_id end)
        as new_users,
    count(distinct case when first_days.first_session_date < sessions.session_date then sessions.indv_id end)
        as returning_users,
    count(*) as sessions,
    {{ bigint_sum('sessions.page_views') }} as page_views,
    {{ bigint_sum('sessions.events') }} as events,
    {{ bigint_sum('round(sessions.duration_seconds * 1000)') }} / 1000.0 / count(*) as avg_session_seconds,
    {{ count_where("sessions.page_views = 1") }} as single_page_sessions,
    {{ bigint_sum('sessions.rage_clicks') }} as rage_clicks,
    {{ bigint_sum('sessions.dead_clicks') }} as dead_clicks,
    {{ bigint_sum('sessions.error_clicks') }} as error_clicks
from sessions
inner join first_days on sessions.indv_id = first_days.indv_id
group by sessions.session_date

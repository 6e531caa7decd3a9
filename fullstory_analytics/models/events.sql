{#
  One row per event, whatever the number of segments that exported it.

  FullStory events have no id, and the loaded table holds an event once per segment whose
  export contained it. Events are told apart by what they are (person, session, page, time,
  type, target, offset); identical events are numbered within each segment, and an event is
  kept as many times as the segment holding the most copies of it holds it. So a person in
  three segments counts once, two identical clicks in one millisecond still count twice, and a
  window one segment has refreshed (late events) while another has not counts the newer one.
#}
{{ config(materialized='view') }}

{% set identity %}
    indv_id, session_id, session_start, page_id, event_start, event_type, event_sub_type,
    event_custom_name, event_target_text, event_page_offset
{% endset %}

with numbered as (
    select
        loaded.*,
        row_number() over (partition by segment_id, {{ identity }} order by window_start) as copy_number
    from {{ source('fullstory', 'events') }} as loaded
),

ranked as (
    select
        numbered.*,
        row_number() over (partition by {{ identity }}, copy_number order by segment_id) as segment_rank
    from numbered
)

select {{ star_without(['segment_id', 'window_start', 'window_end', 'copy_number', 'segment_rank']) }}
from ranked
where segment_rank = 1

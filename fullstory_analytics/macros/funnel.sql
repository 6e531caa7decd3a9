{#
  fullstory_funnel(steps, within='session', within_hours=none, events=none)

  One row per session (within='session') or per person (within='person') that did the first
  step, with the time it first did each step in order: step k counts only when it happened
  after step k-1 (and, with within_hours, no later than that many hours after step 1). Later
  columns are null where the funnel stopped; `steps_completed` counts the steps reached.

  steps: a list of {'name': ..., 'where': <SQL condition on a row of the events model>}, e.g.
    {{ fullstory_funnel([
        {'name': 'viewed_product', 'where': "page_url like '%/p/%'"},
        {'name': 'added_to_cart', 'where': "page_url like '%/cart%'"},
    ]) }}
  A person's funnel starts at the first time they did step 1.
#}
{% macro fullstory_funnel(steps, within='session', within_hours=none, events=none) %}
    {% if within not in ('session', 'person') %}
        {{ exceptions.raise_compiler_error("fullstory_funnel: within must be 'session' or 'person', not " ~ within) }}
    {% endif %}
    {% if steps | length < 2 %}
        {{ exceptions.raise_compiler_error("fullstory_funnel: a funnel needs at least two steps") }}
    {% endif %}
    {% set keys = ['indv_id', 'session_id'] if within == 'session' else ['indv_id'] %}
    {% set source_events = events if events is not none else ref('events') %}

    with funnel_events as (
        select
            {{ keys | join(', ') }},
            event_start,
            {% for step in steps %}
            case when {{ step['where'] }} then 1 else 0 end as is_step_{{ loop.index }}{{ ',' if not loop.last }}
            {% endfor %}
        from {{ source_events }}
    ),

    step_1 as (
        select {{ keys | join(', ') }}, min(event_start) as reached_at
        from funnel_events
        where is_step_1 = 1
        group by {{ keys | join(', ') }}
    ),

    {% for step in steps[1:] %}
    {% set number = loop.index + 1 %}
    step_{{ number }} as (
        select
            {% for key in keys %}previous.{{ key }}, {% endfor %}
            min(funnel_events.event_start) as reached_at
        from step_{{ number - 1 }} as previous
        inner join funnel_events
            on {% for key in keys %}funnel_events.{{ key }} = previous.{{ key }}{{ ' and ' if not loop.last }}{% endfor %}
            and funnel_events.is_step_{{ number }} = 1
            and funnel_events.event_start > previous.reached_at
            {% if within_hours is not none %}
            and funnel_events.event_start <= {{ dbt.dateadd('hour', within_hours, 'step_1.reached_at') }}
            {% endif %}
        {% if within_hours is not none %}
        inner join step_1
            on {% for key in keys %}step_1.{{ key }} = previous.{{ key }}{{ ' and ' if not loop.last }}{% endfor %}
        {% endif %}
        group by {% for key in keys %}previous.{{ key }}{{ ', ' if not loop.last }}{% endfor %}
    ){{ ',' if not loop.last }}
    {% endfor %}

    select
        {% for key in keys %}step_1.{{ key }}, {% endfor %}
        {% for step in steps %}
        step_{{ loop.index }}.reached_at as {{ step['name'] }}_at,
        {% endfor %}
        {% for step in steps %}{% if not loop.first %} + {% endif %}case when step_{{ loop.index }}.reached_at is null then 0 else 1 end{% endfor %}
            as steps_completed
    from step_1
    {% for step in steps[1:] %}
    {% set number = loop.index + 1 %}
    left join step_{{ number }}
        on {% for key in keys %}step_{{ number }}.{{ key }} = step_1.{{ key }}{{ ' and ' if not loop.last }}{% endfor %}
    {% endfor %}
{% endmacro %}

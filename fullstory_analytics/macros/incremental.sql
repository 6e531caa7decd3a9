{#
  How sessions and page views stay exact while they are built incrementally.

  Every window the pipeline loads (new, refreshed by lookback, or backfilled) gets a Completed
  row in `export_runs`, written in the same load as its events. dlt records when each load was
  committed (`_dlt_loads.inserted_at`). A model remembers the newest such time it has seen
  (`_fullstory_loaded_at`); commit times, unlike load ids, keep their order when several
  pipelines load the same dataset. On the next build the windows loaded since are the changed
  windows, and the sessions they can touch are rebuilt whole, from all their events whatever
  window holds them, by the day they started:

    - sessions with an event in a changed window now (new and late events), and
    - rows built before that overlapped a changed window (they may have lost events there; the
      model names the columns that span a row: started_at/ended_at, first/last_event_at).

  Their start days are replaced (delete+insert on session_date; insert_overwrite of the day
  partitions on BigQuery). A session that spans a refreshed window is therefore rebuilt from
  its events on both sides of it, never half.
#}

{% macro fullstory_loaded_windows() %}
    select runs.start_at, runs.end_at, loads.inserted_at
    from {{ source('fullstory', 'export_runs') }} as runs
    inner join {{ source('fullstory', '_dlt_loads') }} as loads on loads.load_id = runs._dlt_load_id
    where runs.export_type = 'events' and runs.status = 'Completed' and loads.status = 0
{% endmacro %}

{% macro fullstory_changed_windows() %}
    select start_at, end_at
    from ({{ fullstory_loaded_windows() }}) as loaded
    where inserted_at > (
        select coalesce(max(_fullstory_loaded_at), cast('1970-01-01 00:00:00' as {{ dbt.type_timestamp() }}))
        from {{ this }}
    )
{% endmacro %}

{% macro fullstory_changed_session_days(first_column='started_at', last_column='ended_at') %}
    select distinct session_date from (
        select {{ utc_date('loaded.session_start') }} as session_date
        from {{ source('fullstory', 'events') }} as loaded
        inner join ({{ fullstory_changed_windows() }}) as changed
            on loaded.event_start >= changed.start_at and loaded.event_start < changed.end_at
        union all
        select built.session_date
        from {{ this }} as built
        inner join ({{ fullstory_changed_windows() }}) as changed
            on built.{{ first_column }} < changed.end_at and built.{{ last_column }} >= changed.start_at
    ) as touched
{% endmacro %}

{# When the newest load this build includes was committed (stored in every row it writes) #}
{% macro fullstory_newest_load_time() %}
    (select max(inserted_at) from ({{ fullstory_loaded_windows() }}) as loaded)
{% endmacro %}

{% macro fullstory_incremental_config() %}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'insert_overwrite' if target.type == 'bigquery' else 'delete+insert',
        'unique_key': none if target.type == 'bigquery' else 'session_date',
        'partition_by': {'field': 'session_date', 'data_type': 'date'} if target.type == 'bigquery' else none,
        'on_schema_change': 'append_new_columns',
    }) }}
{% endmacro %}

{# is_incremental(), except when compiling without introspection (`dbt compile --no-introspect`,
   e.g. BigQuery or Snowflake without credentials at hand): then there is no warehouse to ask,
   and the var fullstory_compile_incremental says which build to show. #}
{% macro fullstory_is_incremental() %}
    {% if not flags.INTROSPECT %}
        {{ return(var('fullstory_compile_incremental', false)) }}
    {% endif %}
    {{ return(is_incremental()) }}
{% endmacro %}

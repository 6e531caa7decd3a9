{# Small SQL pieces that differ between DuckDB, BigQuery and Snowflake. #}

{% macro utc_date(timestamp) -%}
    {%- if target.type == 'bigquery' -%} date({{ timestamp }})
    {%- elif target.type == 'snowflake' -%} to_date(convert_timezone('UTC', {{ timestamp }}))
    {%- else -%} cast(timezone('UTC', {{ timestamp }}) as date)
    {%- endif -%}
{%- endmacro %}

{% macro milliseconds_between(start, end) -%}
    {%- if target.type == 'bigquery' -%} timestamp_diff({{ end }}, {{ start }}, millisecond)
    {%- elif target.type == 'snowflake' -%} datediff('millisecond', {{ start }}, {{ end }})
    {%- else -%} (epoch_ms({{ end }}) - epoch_ms({{ start }}))
    {%- endif -%}
{%- endmacro %}

{# `select` every column but these: DuckDB and Snowflake say exclude, BigQuery except #}
{% macro star_without(columns) -%}
    * {% if target.type == 'bigquery' %}except{% else %}exclude{% endif %} ({{ columns | join(', ') }})
{%- endmacro %}

{# The `index`-th group (1-based) of a regular expression, NULL when it does not match #}
{% macro regex_group(value, pattern) -%}
    {%- if target.type == 'bigquery' -%} nullif(regexp_extract({{ value }}, r'{{ pattern }}'), '')
    {%- elif target.type == 'snowflake' -%} nullif(regexp_substr({{ value }}, '{{ pattern }}', 1, 1, 'e', 1), '')
    {%- else -%} nullif(regexp_extract({{ value }}, '{{ pattern }}', 1), '')
    {%- endif -%}
{%- endmacro %}

{# URL parts as dbt_fullstory names them (url_host, url_path, url_query, ...); `part`: host,
   path, query or fragment (what follows '#', where single-page apps keep their route) #}
{% macro url_part(url, part) -%}
    {%- set patterns = {
        'host': '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]+)',
        'path': '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]+([^?#]*)',
        'query': '^[^?#]*[?]([^#]*)',
        'fragment': '#(.*)$',
    } -%}
    {{ regex_group(url, patterns[part]) }}
{%- endmacro %}

{% macro text(value) -%} cast({{ value }} as {{ dbt.type_string() }}) {%- endmacro %}

{# A comma list of the distinct values of `column` per group, sorted #}
{% macro sorted_list(column) -%}
    {%- if target.type == 'bigquery' -%} string_agg(distinct {{ column }}, ',' order by {{ column }})
    {%- elif target.type == 'snowflake' -%} listagg(distinct {{ column }}, ',') within group (order by {{ column }})
    {%- else -%} string_agg(distinct {{ column }}, ',' order by {{ column }})
    {%- endif -%}
{%- endmacro %}

{# How many rows of the group meet `condition`, as a bigint on every warehouse #}
{% macro count_where(condition) -%}
    cast(sum(case when {{ condition }} then 1 else 0 end) as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro bigint_sum(column) -%} cast(sum({{ column }}) as {{ dbt.type_bigint() }}) {%- endmacro %}

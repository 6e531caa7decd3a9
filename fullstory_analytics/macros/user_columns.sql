{# Custom user variables (FS.setUserVars / FS.identify properties) arrive as `user_<name>_<type>`
   columns next to FullStory's own user fields. Sessions and users carry each one. #}

{% macro fullstory_user_columns() %}
    {% if var('fullstory_user_columns') is not none %}
        {{ return(var('fullstory_user_columns') | map('lower') | list) }}
    {% endif %}
    {% if not execute or not flags.INTROSPECT %}
        {{ return([]) }}
    {% endif %}
    {% set own = ['user_id', 'user_created', 'user_app_key', 'user_display_name', 'user_email'] %}
    {% set names = [] %}
    {% for column in adapter.get_columns_in_relation(source('fullstory', 'events')) %}
        {% set name = column.name | lower %}
        {% if name.startswith('user_') and name not in own %}
            {% do names.append(name) %}
        {% endif %}
    {% endfor %}
    {{ return(names | sort) }}
{% endmacro %}

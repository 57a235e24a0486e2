"""Red-team cases against the rules of issue 10 (functions by allowlist, secrets beyond the
catalogs, bounded validation), table-driven: every case must be refused by ``validate_sql``.

- ``HOLES``: inputs that the validator of 581eb17 ACCEPTED although they read what the rules
  refuse (found by the red-team pass, fixed on wp/red). The tests against the embedded
  PostgreSQL below show the harm for the worst of them: the least-privilege reader role reads
  the secret with the accepted SQL (control, straight through psycopg), and ``run_readonly``
  now refuses it.
- ``REGRESSION``: spellings that were already refused (quoted and qualified names, attribute
  and functional notation, casts, table functions, ROWS FROM, LATERAL, CTEs named like
  catalogs, EXPLAIN/VALUES/TABLE, every denied function family...), kept as regression tests.
- ``DENY_COLUMNS_HOLES``: the access policy's hidden columns read through a column alias list
  or an aliased parenthesised join (also accepted at 581eb17).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conftest import db_dsn, scratch_database
from pg_mcp.core.model import Column, DatabaseSchema, Table
from pg_mcp.core.settings import Policy, Settings
from pg_mcp.core.validator import validate_sql
from pg_mcp.db.executor import run_readonly

# Accepted at 581eb17, refused now (ACCESS_DENIED). Column alias lists rename a secret view's
# columns by position (rolconfig is pg_roles' 12th column, query pg_stat_activity's 21st); an
# aliased parenthesised join's j.col / j.* / j read the joined tables' columns; pg_toast.*
# holds catalogs' values out of line (pg_toast_2619: pg_statistic, 2964: pg_db_role_setting,
# 6100: pg_subscription, 1255: pg_proc); the rest are setting names and extension views.
HOLES = [
    "SELECT q FROM pg_stat_activity a(d,dn,p,lp,ls,u,un,app,ca,ch,cp,bs,xs,qs,sc,wet,we,st,bx,bxm,q)",
    "SELECT a20 FROM pg_stat_activity AS a(a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12,a13,a14,a15,a16,a17,a18,a19,a20)",
    "SELECT c FROM pg_roles AS r(a,b,c,d,e,f,g,h,i,j,k,l,m)",
    "SELECT current_setting('app.jwt')",
    "SELECT current_setting('app.signing')",
    "SELECT current_setting('app.pass')",
    "SELECT current_setting('app.dsn')",
    "SELECT current_setting('app.database_url')",
    "SELECT current_setting('app.salt')",
    "SELECT current_setting('app.hmac')",
    "SELECT current_setting('app.private')",
    "SELECT current_setting('app.pwd')",
    "SELECT current_setting('archive_command')",
    "SELECT current_setting('restore_command')",
    "SELECT current_setting('recovery_end_command')",
    "SELECT current_setting('archive_cleanup_command')",
    "SELECT l FROM pg_roles AS r(a,b,c,d,e,f,g,h,i,j,k,l)",
    "SELECT r.l FROM pg_roles AS r(a,b,c,d,e,f,g,h,i,j,k,l)",
    "SELECT j FROM pg_user AS u(a,b,c,d,e,f,g,h,j)",
    "SELECT q FROM pg_stat_activity AS a(a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12,a13,a14,a15,a16,a17,a18,a19,a20,q)",
    "SELECT * FROM pg_toast.pg_toast_2619",
    "SELECT chunk_data FROM pg_toast.pg_toast_2964",
    "SELECT chunk_data FROM pg_toast.pg_toast_6100",
    "SELECT chunk_data FROM pg_toast.pg_toast_1260",
    "SELECT * FROM pg_qualstats",
    "SELECT * FROM pg_store_plans",
    "SELECT * FROM pg_proc",
    "SELECT proconfig FROM pg_proc",
    "SELECT j.* FROM (pg_stat_activity a JOIN pg_roles r ON true) j",
    "SELECT j FROM (pg_stat_activity a JOIN pg_roles r ON true) AS j",
    "SELECT j.query FROM (pg_stat_activity a CROSS JOIN pg_roles r) AS j",
    "SELECT q FROM (pg_stat_activity a CROSS JOIN pg_roles r) AS j(a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12,a13,a14,a15,a16,a17,a18,a19,a20,q)",
    "EXPLAIN SELECT * FROM pg_toast.pg_toast_2619",
    "TABLE pg_toast.pg_toast_2619",
    "TABLE pg_proc",
    "SELECT * FROM pg_toast.pg_toast_1255",
]

REGRESSION = [
    'SELECT * FROM "pg_stats"',
    'SELECT * FROM "PG_STATS"',
    'SELECT * FROM U&"pg_stats"',
    'SELECT * FROM U&"pg\\005fstats"',
    "SELECT * FROM U&\"pg!005fstats\" UESCAPE '!'",
    'SELECT * FROM pg_catalog."pg_stats"',
    "TABLE pg_stats",
    "TABLE pg_settings",
    "TABLE pg_catalog.pg_settings",
    "TABLE pg_stat_activity",
    "TABLE pg_roles",
    "TABLE pg_db_role_setting",
    "TABLE pg_subscription",
    "SELECT s FROM pg_stats s",
    "SELECT row_to_json(s) FROM pg_stats s",
    "SELECT s FROM pg_settings s",
    "SELECT s::text FROM pg_settings s",
    "SELECT (s).setting FROM pg_settings s",
    "SELECT (s.*)::text FROM pg_roles s",
    "SELECT to_jsonb(r.*) FROM pg_roles r",
    "SELECT r FROM pg_roles r",
    "SELECT r::text FROM pg_roles r",
    "SELECT (r).rolconfig FROM pg_roles r",
    "SELECT hstore(r) FROM pg_roles r",
    "SELECT json_agg(r) FROM pg_roles r",
    "SELECT array_agg(r) FROM pg_roles r",
    "SELECT ROW(r.*) FROM pg_roles r",
    "SELECT a FROM pg_stat_activity a",
    "SELECT a::text FROM pg_stat_activity a",
    "SELECT json_agg(a) FROM pg_stat_activity a",
    "SELECT (a).query FROM pg_stat_activity a",
    "SELECT (pg_stat_activity).query FROM pg_stat_activity",
    "SELECT pg_stat_activity.query FROM pg_stat_activity",
    "SELECT pg_catalog.pg_stat_activity.query FROM pg_catalog.pg_stat_activity",
    'SELECT "query" FROM pg_stat_activity',
    'SELECT U&"query" FROM pg_stat_activity',
    'SELECT U&"\\0071uery" FROM pg_stat_activity',
    "SELECT * FROM (SELECT * FROM pg_stat_activity) x",
    "SELECT x.* FROM (SELECT * FROM pg_stat_activity) x",
    "SELECT x FROM (SELECT query FROM pg_stat_activity) x",
    "SELECT x FROM (SELECT pid, query FROM pg_stat_activity) x",
    "WITH x AS (SELECT * FROM pg_stat_activity) SELECT * FROM x",
    "WITH x AS (SELECT query q FROM pg_stat_activity) SELECT q FROM x",
    "WITH pg_stats AS (SELECT 1 a) SELECT * FROM pg_catalog.pg_stats",
    "SELECT * FROM pg_stat_activity NATURAL JOIN pg_stat_activity b",
    "SELECT * FROM pg_stat_activity a(a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12,a13,a14,a15,a16,a17,a18,a19,a20)",
    "SELECT * FROM pg_roles AS r(a,b,c)",
    "SELECT * FROM pg_stat_activity, LATERAL (SELECT query) x",
    "SELECT (SELECT query) FROM pg_stat_activity",
    "SELECT (SELECT pg_stat_activity.query) FROM pg_stat_activity",
    "SELECT pid FROM pg_stat_activity ORDER BY query",
    "SELECT pid FROM pg_stat_activity WHERE query LIKE '%PASSWORD%'",
    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER ROLE%PASSWORD ''a%'",
    "SELECT pid FROM pg_stat_activity GROUP BY pid, query",
    "SELECT count(*) FROM pg_stats WHERE most_common_vals::text LIKE '%SCRAM%'",
    "SELECT count(*) FROM pg_roles WHERE rolconfig IS NOT NULL",
    "SELECT pid FROM pg_stat_activity a WHERE a.query ~ '^ALTER'",
    "SELECT row_to_json(t) FROM (SELECT * FROM pg_roles) t",
    "SELECT * FROM pg_stat_activity a JOIN LATERAL (SELECT a.query) q ON true",
    "SELECT * FROM (pg_stat_activity)",
    "SELECT * FROM (pg_stat_activity a JOIN pg_database d ON a.datid=d.oid)",
    "SELECT * FROM pg_stat_activity a JOIN pg_database d USING (datid)",
    "SELECT * FROM ONLY pg_stats",
    "SELECT * FROM pg_stats TABLESAMPLE SYSTEM (100)",
    "SELECT * FROM pg_catalog . pg_stats",
    "SELECT * FROM pg_catalog/**/.pg_stats",
    "SELECT * FROM pg_stat_get_activity(null)",
    "SELECT pg_stat_get_activity(null)",
    "SELECT (pg_stat_get_activity(null)).query",
    "SELECT * FROM ROWS FROM (pg_stat_get_activity(NULL))",
    "SELECT * FROM ROWS FROM (generate_series(1,1), pg_stat_get_activity(NULL))",
    "SELECT * FROM pg_catalog.pg_stat_get_activity(NULL)",
    'SELECT "pg_stat_get_activity"(NULL)',
    'SELECT U&"pg_stat_get_activity"(NULL)',
    "SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s",
    "SELECT pg_show_all_settings()",
    "SELECT (pg_show_all_settings()).setting",
    "SELECT * FROM pg_show_all_settings() s WHERE name='primary_conninfo'",
    "SELECT pg_show_all_file_settings()",
    "SELECT * FROM pg_show_all_file_settings()",
    "SELECT current_setting('primary_conninfo', false)",
    "SELECT current_setting('Primary_Conninfo')",
    "SELECT current_setting('PRIMARY_CONNINFO')",
    "SELECT current_setting(' primary_conninfo')",
    "SELECT current_setting(E'primary_conninfo')",
    "SELECT current_setting(U&'primary_conninfo')",
    "SELECT current_setting(U&'prim\\0061ry_conninfo')",
    "SELECT current_setting($$primary_conninfo$$)",
    "SELECT current_setting($x$primary_conninfo$x$)",
    "SELECT current_setting(E'prim\\x61ry_conninfo')",
    "SELECT current_setting(E'\\160rimary_conninfo')",
    "SELECT current_setting('primary_conninfo'::text)",
    "SELECT current_setting(text 'primary_conninfo')",
    "SELECT current_setting(CAST('primary_conninfo' AS text))",
    "SELECT current_setting('primary_' 'conninfo')",
    "SELECT current_setting(setting_name => 'primary_conninfo')",
    "SELECT current_setting(VARIADIC ARRAY['primary_conninfo'])",
    "SELECT current_setting(name => 'app.jwt_secret')",
    "SELECT current_setting('app.jwt_' || 'secret')",
    "SELECT current_setting(concat('app.jwt', '_secret'))",
    "SELECT current_setting(lower('APP.JWT_SECRET'))",
    "SELECT current_setting(chr(112)||'rimary_conninfo')",
    "SELECT current_setting(NULL)",
    "SELECT current_setting(x) FROM (VALUES ('primary_conninfo')) v(x)",
    "SELECT current_setting('app.jwt_s' 'ecret')",
    "SELECT current_setting('APP.JWT_SECRET')",
    "SELECT current_setting('app.\"jwt_secret\"')",
    "SELECT current_setting('\"app\".jwt_secret')",
    "SELECT current_setting('app.JwtSeCrEt')",
    "SELECT current_setting('app.apikey')",
    "SELECT current_setting('ssl_key_file')",
    "SELECT current_setting('ssl_passphrase_command')",
    "SELECT current_setting('krb_server_keyfile')",
    "SELECT current_setting('dblink.password')",
    "SHOW primary_conninfo",
    "SHOW ALL",
    "SELECT set_config('search_path', 'x', true)",
    "SELECT set_config('app.jwt_secret', 'x', true)",
    "SELECT pg_catalog.set_config('work_mem','1GB',false)",
    "SELECT setting FROM pg_file_settings",
    "SELECT * FROM pg_hba_file_rules",
    "SELECT pg_hba_file_rules()",
    "SELECT * FROM pg_hba_file_rules()",
    "SELECT * FROM pg_ident_file_mappings()",
    "SELECT * FROM pg_stat_wal_receiver",
    "SELECT pg_stat_get_wal_receiver()",
    "SELECT subconninfo FROM pg_catalog.pg_subscription",
    "SELECT s FROM pg_subscription s",
    "SELECT umoptions FROM pg_user_mapping",
    "SELECT * FROM pg_user_mappings",
    "SELECT * FROM information_schema.user_mapping_options",
    "SELECT lo_get(1)",
    "SELECT lo_get(oid) FROM pg_largeobject_metadata",
    "SELECT loread(lo_open(1, 262144), 100)",
    "SELECT lo_export(1, '/tmp/x')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT lo_from_bytea(0, 'x')",
    "SELECT lo_creat(-1)",
    "SELECT lo_unlink(1)",
    "SELECT pg_read_file('postgresql.conf')",
    "SELECT pg_read_binary_file('postgresql.conf')",
    "SELECT pg_read_file_old('postgresql.conf', 0, 100)",
    "SELECT pg_ls_dir('.')",
    "SELECT * FROM pg_ls_dir('.')",
    "SELECT pg_ls_waldir()",
    "SELECT pg_ls_logdir()",
    "SELECT pg_ls_tmpdir()",
    "SELECT pg_ls_archive_statusdir()",
    "SELECT pg_stat_file('postgresql.conf')",
    "SELECT pg_current_logfile()",
    "SELECT pg_sleep(10)",
    "SELECT pg_sleep_for('10s')",
    "SELECT pg_sleep_until(now() + '10s')",
    "SELECT pg_advisory_lock(1)",
    "SELECT pg_try_advisory_lock(1)",
    "SELECT pg_advisory_xact_lock(1)",
    "SELECT pg_try_advisory_xact_lock_shared(1)",
    "SELECT txid_current()",
    "SELECT pg_current_xact_id()",
    "SELECT nextval('s')",
    "SELECT setval('s', 1)",
    "SELECT pg_notify('c', 'x')",
    "SELECT pg_cancel_backend(1)",
    "SELECT pg_terminate_backend(1)",
    "SELECT pg_reload_conf()",
    "SELECT pg_rotate_logfile()",
    "SELECT pg_switch_wal()",
    "SELECT pg_create_restore_point('x')",
    "SELECT pg_start_backup('x')",
    "SELECT pg_backup_start('x')",
    "SELECT pg_create_physical_replication_slot('x')",
    "SELECT pg_create_logical_replication_slot('x','test_decoding')",
    "SELECT pg_logical_slot_get_changes('x', NULL, NULL)",
    "SELECT pg_replication_origin_create('x')",
    "SELECT pg_logical_emit_message(true, 'x', 'y')",
    "SELECT pg_promote()",
    "SELECT pg_wal_replay_pause()",
    "SELECT pg_import_system_collations('pg_catalog')",
    "SELECT pg_stat_reset()",
    "SELECT pg_stat_reset_shared('bgwriter')",
    "SELECT pg_stat_statements_reset()",
    "SELECT pg_stat_clear_snapshot()",
    "SELECT pg_stat_force_next_flush()",
    "SELECT pg_log_backend_memory_contexts(1)",
    "SELECT pg_prewarm('t')",
    "SELECT setseed(0.5)",
    "SELECT pg_nextoid('pg_class', 'oid', 'pg_class_oid_index')",
    "SELECT brin_summarize_new_values('i')",
    "SELECT gin_clean_pending_list('i')",
    "SELECT dblink('dbname=x', 'select 1')",
    "SELECT dblink_exec('dbname=x', 'insert')",
    "SELECT * FROM dblink('', 'select 1') t(a int)",
    "SELECT xpath_table('a','b','c','d','e')",
    "SELECT query_to_xml('select * from pg_authid', true, true, '')",
    "SELECT query_to_xml('select 1', true, true, '')",
    "SELECT query_to_json('select 1')",
    "SELECT table_to_xml('pg_authid', true, true, '')",
    "SELECT table_to_xml('pg_stats', true, true, '')",
    "SELECT table_to_xmlschema('pg_authid', true, true, '')",
    "SELECT cursor_to_xml('c', 1, true, true, '')",
    "SELECT schema_to_xml('pg_catalog', true, true, '')",
    "SELECT database_to_xml(true, true, '')",
    "SELECT database_to_xml_and_xmlschema(true,true,'')",
    "SELECT xmlexists('//x' PASSING '<x/>')",
    "SELECT ts_stat('select query::tsvector from pg_stat_activity')",
    "SELECT * FROM ts_stat('select to_tsvector(rolpassword) from pg_authid')",
    "SELECT ts_rewrite('a'::tsquery, 'select ''a''::tsquery, ''b''::tsquery')",
    "SELECT * FROM ts_rewrite('a'::tsquery, 'SELECT rolpassword::tsquery, rolpassword::tsquery FROM pg_authid')",
    "SELECT pg_catalog.ts_stat('select 1')",
    "SELECT query(a) FROM pg_stat_activity a",
    "SELECT rolconfig(r) FROM pg_roles r",
    "SELECT useconfig(u) FROM pg_user u",
    "SELECT pg_stat_activity FROM pg_stat_activity",
    "SELECT pg_roles FROM pg_roles",
    "SELECT pg_roles::text FROM pg_roles",
    "SELECT x FROM (SELECT a FROM pg_stat_activity a) s(x)",
    "SELECT (x).query FROM (SELECT a FROM pg_stat_activity a) s(x)",
    "SELECT * FROM pg_catalog.pg_stat_activity WHERE pid = pg_backend_pid()",
    "SELECT count(*) FILTER (WHERE query LIKE '%x%') FROM pg_stat_activity",
    "SELECT pid FROM pg_stat_activity WHERE position('PASSWORD' in query) > 0",
    "SELECT pid FROM pg_stat_activity WHERE \"query\" LIKE 'x%'",
    "SELECT DISTINCT ON (query) pid FROM pg_stat_activity",
    "SELECT pid FROM pg_stat_activity WINDOW w AS (PARTITION BY query)",
    "SELECT string_agg(pid::text, ',' ORDER BY query) FROM pg_stat_activity",
    "SELECT * FROM pg_stat_activity a, LATERAL unnest(ARRAY[a.query]) u",
    "SELECT (SELECT a.query) AS x FROM pg_stat_activity a",
    "SELECT array(SELECT query FROM pg_stat_activity)",
    "SELECT EXISTS(SELECT 1 FROM pg_stat_activity WHERE query LIKE 'A%')",
    "SELECT 1 FROM pg_stat_activity a WHERE a.* IS NOT NULL",
    "SELECT 1 FROM pg_stat_activity a WHERE a IS NOT NULL",
    "SELECT format('%s', a) FROM pg_stat_activity a",
    "SELECT concat(a) FROM pg_stat_activity a",
    "SELECT a.*::text FROM pg_stat_activity a",
    "SELECT (a.*) FROM pg_stat_activity a",
    "SELECT row(a.*)::text FROM pg_stat_activity a",
    "SELECT (row(a.*)).f21 FROM pg_stat_activity a",
    "SELECT count(*) FROM pg_stats WHERE tablename='pg_authid'",
    "SELECT 1 FROM pg_stats LIMIT 0",
    "SELECT * FROM pg_catalog.pg_stat_get_backend_activity(1)",
    "SELECT * FROM pg_stat_statements",
    "SELECT * FROM pg_stat_statements(true)",
    "SELECT * FROM public.pg_stat_statements(true)",
    "SELECT * FROM ext.pg_stat_statements(true)",
    "SELECT query FROM pg_stat_monitor",
    "SELECT * FROM pg_authid",
    "SELECT * FROM pg_shadow",
    "SELECT oid::regrole FROM pg_authid",
    "SELECT ROW('x')::pg_stat_activity",
    "SELECT cast(row(1) as pg_stats)",
    "SELECT 1 FROM t ORDER BY 1 USING <",
    "SELECT 1 === 2",
    "SELECT 1 ## 2",
    "SELECT pg_export_snapshot()",
    "SELECT pg_ls_dir('.', true, false)",
    "SELECT pg_ls_logicalsnapdir()",
    "SELECT pg_ls_replslotdir('x')",
    "SELECT pg_ls_summariesdir()",
    "SELECT pg_sync_replication_slots()",
    "SELECT pg_logical_slot_peek_changes('x',NULL,NULL)",
    "SELECT pg_replication_slot_advance('x','0/0')",
    "SELECT pg_copy_physical_replication_slot('a','b')",
    "SELECT pg_drop_replication_slot('x')",
    "SELECT pg_replication_origin_session_setup('x')",
    "SELECT pg_replication_origin_xact_setup('0/0', now())",
    "SELECT pg_replication_origin_advance('x','0/0')",
    "SELECT pg_replication_origin_progress('x', true)",
    "SELECT pg_replication_origin_session_progress(true)",
    "SELECT pg_wal_replay_resume()",
    "SELECT pg_backup_stop()",
    "SELECT pg_stop_backup()",
    "SELECT pg_log_standby_snapshot()",
    "SELECT pg_create_logical_replication_slot('a','pgoutput', true)",
    "SELECT pg_stat_reset_single_table_counters(1)",
    "SELECT pg_stat_reset_slru()",
    "SELECT pg_stat_reset_replication_slot(NULL)",
    "SELECT pg_stat_reset_subscription_stats(NULL)",
    "SELECT pg_stat_reset_backend_stats(1)",
    "SELECT pg_restore_relation_stats('relation', 't'::regclass)",
    "SELECT pg_clear_relation_stats('t'::regclass)",
    "SELECT pg_restore_attribute_stats('relation','t')",
    "SELECT pg_clear_attribute_stats('t'::regclass, 'a', false)",
    "SELECT pg_set_relation_stats('t'::regclass, 1)",
    "SELECT pg_set_attribute_stats('t'::regclass, 'a', false, 0.1)",
    "SELECT binary_upgrade_set_next_pg_type_oid(1)",
    "SELECT binary_upgrade_create_empty_extension('a','b',true,'c',null,null,null)",
    "SELECT pg_extension_config_dump('t', '')",
    "SELECT pg_create_logical_replication_slot('x','y',false,false,false)",
    "SELECT amcheck_next()",
    "SELECT bt_index_check('i')",
    "SELECT pg_prewarm(1)",
    "SELECT autoprewarm_dump_now()",
    "SELECT pg_visibility_map('t')",
    "SELECT pg_truncate_visibility_map('t')",
    "SELECT pg_freespace('t')",
    "SELECT pgstattuple('pg_authid')",
    "SELECT pgstatindex('i')",
    "SELECT pg_buffercache_evict(1)",
    "SELECT pg_buffercache_pages()",
    "SELECT pg_walinspect_get_records_info('0/0','0/0')",
    "SELECT * FROM pg_get_wal_records_info('0/0','0/0')",
    "SELECT * FROM pg_get_wal_block_info('0/0','0/0')",
    "SELECT pg_logdir_ls()",
    "SELECT pg_file_write('x','y',false)",
    "SELECT pg_file_unlink('x')",
    "SELECT pg_file_rename('a','b')",
    "SELECT pg_file_sync('x')",
    "SELECT pg_read_file('x', 0, 10, true)",
    "SELECT gen_random_bytes(10)",
    "SELECT crypt('a', gen_salt('bf'))",
    "SELECT digest('a','sha256')",
    "SELECT hmac('a','b','sha256')",
    "SELECT pgp_sym_decrypt('x','y')",
    "SELECT armor('x')",
    "SELECT dearmor('x')",
    "SELECT \"current_setting\"('primary_conninfo')",
    "SELECT \"CURRENT_SETTING\"('primary_conninfo')",
    "SELECT pg_catalog.\"current_setting\"('app.jwt_secret')",
    "SELECT current_setting('app.jwt_secret') FROM generate_series(1,1)",
    "SELECT * FROM current_setting('app.jwt_secret')",
    "SELECT * FROM ROWS FROM (current_setting('app.jwt_secret'))",
    "SELECT * FROM current_setting('app.jwt_secret') AS t(x)",
    "SELECT * FROM unnest(ARRAY[current_setting('app.jwt_secret')])",
    "SELECT current_setting(a.b) FROM (SELECT 'app.jwt_secret' b) a",
    "SELECT current_setting('app.jwt_secret' COLLATE \"C\")",
    "SELECT current_setting(('app.jwt_secret'))",
    "SELECT current_setting((('primary_conninfo')))",
    "SELECT current_setting('app.jwt_secret'::varchar)",
    "SELECT current_setting('app.jwt_secret'::name)",
    "SELECT current_setting(CASE WHEN true THEN 'app.jwt_secret' END)",
    "SELECT current_setting(COALESCE(NULL, 'app.jwt_secret'))",
    "SELECT current_setting(trim(' app.jwt_secret '))",
    "SELECT current_setting(reverse('terces_twj.ppa'))",
    "SELECT current_setting(convert_from('\\x7072696d6172795f636f6e6e696e666f', 'UTF8'))",
    "SELECT current_setting(x) FROM unnest(ARRAY['primary_conninfo']) x",
    "SELECT current_setting('primary_conninfo'::text COLLATE \"C\")",
    "SELECT current_setting(('primary_conninfo')::text)",
    "SELECT \"current_setting\"(x) FROM unnest(ARRAY['a']) x",
    "SELECT current_setting('app.jwt_secret', false)::text",
    "SELECT current_setting(string 'app.jwt_secret')",
    "SELECT current_setting(name 'app.jwt_secret')",
    "SELECT current_setting(varchar 'app.jwt_secret')",
    "SELECT current_setting(E'app.jwt_secr\\145t')",
    "SELECT current_setting(E'app.jwt_secr\\u0065t')",
    "SELECT current_setting(U&'app.jwt_secr\\0065t')",
    "SELECT current_setting(U&'app.jwt_secr!0065t' UESCAPE '!')",
    "SELECT current_setting(N'app.jwt_secret')",
    "SELECT current_setting(B'0')",
    "SELECT current_setting(X'41')",
    "SELECT current_setting/**/('app.jwt_secret')",
    "SELECT pg_catalog . current_setting ('app.jwt_secret')",
    "SELECT current_setting\t('app.jwt_secret')",
    "SELECT current_setting('app.jwt_secret')",
    "SELECT current_setting('app.' 'jwt_secret')",
    "SELECT current_setting(('app' || '.jwt_secret'))",
    "SELECT current_setting('app.jwt_secret' /* hi */)",
    "SELECT current_setting(setting) FROM pg_settings",
    "SELECT set_config('a','b',true)",
    "SELECT setting FROM pg_catalog.pg_settings s WHERE false",
    "SELECT count(*) FROM pg_settings",
    "SELECT name FROM pg_settings",
    "SELECT name FROM pg_settings WHERE name='x'",
    "SELECT 1 FROM pg_db_role_setting",
    "SELECT (SELECT setconfig FROM pg_db_role_setting LIMIT 1)",
    "SELECT rolname FROM pg_roles WHERE rolconfig::text LIKE '%jwt%'",
    "SELECT rolname FROM pg_roles r WHERE r.rolconfig IS NOT NULL",
    "SELECT rolname FROM pg_roles ORDER BY rolconfig",
    "SELECT rolname FROM pg_roles, unnest(rolconfig) c",
    "SELECT c FROM pg_roles r, LATERAL unnest(r.rolconfig) c",
    "SELECT c FROM pg_roles, unnest(pg_roles.rolconfig) c",
    "SELECT * FROM pg_catalog.pg_roles, LATERAL (SELECT 1) x",
    "SELECT rolname FROM pg_roles UNION SELECT query FROM pg_stat_activity",
    "SELECT query FROM pg_stat_activity UNION ALL SELECT 'x'",
    "SELECT * FROM pg_stat_activity EXCEPT SELECT * FROM pg_stat_activity WHERE false",
    "SELECT a.* FROM pg_stat_activity a",
    "SELECT a.pid, a.* FROM pg_stat_activity a",
    "SELECT (a).* FROM pg_stat_activity a",
    "SELECT (a.*).* FROM pg_stat_activity a",
    "SELECT t.* FROM pg_stat_activity AS t",
    "SELECT pg_stat_activity.* FROM pg_stat_activity",
    "SELECT pg_catalog.pg_stat_activity.* FROM pg_catalog.pg_stat_activity",
    "SELECT pg_catalog.pg_stat_activity.query FROM pg_stat_activity",
    "SELECT pg_stat_activity.query FROM pg_catalog.pg_stat_activity",
    'SELECT "pg_stat_activity"."query" FROM "pg_stat_activity"',
    "SELECT x.query FROM pg_stat_activity x",
    "SELECT X.QUERY FROM pg_stat_activity x",
    'SELECT x."query" FROM pg_stat_activity x',
    "SELECT query FROM PG_STAT_ACTIVITY",
    "SELECT Query FROM Pg_Stat_Activity",
    "SELECT query FROM pg_catalog.PG_STAT_ACTIVITY",
    "WITH pg_stat_activity AS (SELECT 'x' query) SELECT query FROM pg_catalog.pg_stat_activity",
    "WITH a AS (SELECT * FROM pg_stat_activity) SELECT pid FROM a",
    "WITH a AS MATERIALIZED (SELECT query FROM pg_stat_activity) SELECT count(*) FROM a",
    "WITH RECURSIVE r(q) AS (SELECT query FROM pg_stat_activity) SELECT q FROM r",
    "SELECT * FROM pg_stat_activity a JOIN pg_stat_activity b USING (pid)",
    "SELECT query FROM pg_stat_activity a JOIN (SELECT 1 x) b ON true",
    "SELECT b.* FROM (SELECT 1 x) a JOIN pg_stat_activity b ON true",
    "SELECT * FROM pg_stat_activity a FULL JOIN pg_roles r ON false",
    "SELECT * FROM (pg_stat_activity a JOIN pg_roles r ON true)",
    "SELECT j.rolconfig FROM (pg_stat_activity a CROSS JOIN pg_roles r) AS j",
    "SELECT * FROM pg_stat_activity WHERE pid = 1 FOR UPDATE",
    "EXPLAIN SELECT query FROM pg_stat_activity",
    "EXPLAIN (VERBOSE) SELECT * FROM pg_settings",
    "VALUES ((SELECT query FROM pg_stat_activity LIMIT 1))",
    "VALUES (current_setting('app.jwt_secret'))",
    "SELECT * FROM pg_stats_ext_exprs",
    "SELECT * FROM pg_catalog.pg_stats_ext",
    "SELECT pg_mcv_list_items(stxdmcv) FROM pg_statistic_ext_data",
    "SELECT stanullfrac FROM pg_statistic",
    'SELECT stavalues1 FROM pg_catalog."pg_statistic"',
    'SELECT most_common_vals FROM "pg_stats"',
    "SELECT histogram_bounds FROM pg_stats",
    "SELECT 1 FROM pg_stats",
    "SELECT _pg_expandarray(ARRAY[1])",
    "SELECT * FROM information_schema._pg_user_mappings",
    "SELECT * FROM information_schema.user_mappings",
    "SELECT * FROM heap_page_items(get_raw_page('pg_authid', 0))",
    "SELECT * FROM pg_catalog.heap_page_items('\\x00')",
    "SELECT * FROM fsm_page_contents(get_raw_page('pg_authid','fsm',0))",
    "SELECT * FROM page_inspect.get_raw_page('pg_authid', 0)",
    "SELECT \"get_raw_page\"('pg_authid', 0)",
    "SELECT bt_page_items('pg_authid_rolname_index', 1)",
    "SELECT * FROM pg_visibility('pg_authid')",
    "SELECT * FROM pgstattuple('pg_authid')",
    "SELECT pgstattuple_approx('pg_authid')",
    "SELECT * FROM pg_check_frozen('pg_authid')",
    "SELECT pg_relpages('pg_authid')",
    "SELECT verify_heapam('pg_authid')",
    "SELECT * FROM pg_get_wal_record_info('0/0')",
    "SELECT * FROM pg_logical_slot_peek_binary_changes('x', NULL, NULL)",
    "SELECT * FROM pg_walinspect.pg_get_wal_records_info('0/0','0/1')",
    "SELECT dblink_connect('x')",
    "SELECT * FROM dblink_get_connections()",
    "SELECT postgres_fdw_get_connections()",
    "SELECT * FROM postgres_fdw_get_connections()",
    "SELECT postgres_fdw_disconnect_all()",
    "SELECT pg_sleep(0)",
    "SELECT pg_catalog.pg_sleep(0)",
    'SELECT "pg_sleep"(0)',
    'SELECT "PG_SLEEP"(0)',
    "SELECT (pg_sleep(1))",
    "SELECT 1 WHERE pg_sleep(1) IS NULL",
    "SELECT * FROM pg_sleep(1)",
    "SELECT * FROM ROWS FROM (pg_sleep(1))",
    "SELECT * FROM generate_series(1,10) g, LATERAL pg_sleep(0.1)",
    "SELECT array_agg(pg_sleep(0)) FROM generate_series(1,3)",
    "SELECT count(*) FILTER (WHERE pg_sleep(0) IS NULL) FROM t",
    "SELECT 1 ORDER BY pg_sleep(1)",
    "SELECT 1 GROUP BY pg_sleep(1)",
    "SELECT 1 HAVING pg_sleep(1) IS NULL",
    "SELECT row_number() OVER (ORDER BY pg_sleep(1))",
    "SELECT (SELECT pg_sleep(1))",
    "SELECT 1 FROM t WHERE EXISTS (SELECT pg_sleep(1))",
    "WITH x AS (SELECT pg_sleep(1)) SELECT * FROM x",
    "SELECT CASE WHEN false THEN pg_sleep(1) END",
    "SELECT pg_sleep(1)::text",
    "SELECT CAST(pg_sleep(1) AS text)",
    "SELECT 1 FROM t WHERE id IN (SELECT pg_sleep(1))",
    "VALUES (pg_sleep(1))",
    "SELECT * FROM (VALUES (pg_sleep(1))) v",
    "SELECT ARRAY[pg_sleep(1)]",
    "SELECT ROW(pg_sleep(1))",
    "SELECT xmlelement(name x, pg_sleep(1))",
    "SELECT json_build_object('a', pg_sleep(1))",
    "SELECT format('%s', pg_sleep(1))",
    "SELECT pg_sleep_for(interval '1s')",
    "SELECT nextval('s'::regclass)",
    "SELECT pg_catalog.nextval('s')",
    "SELECT \"nextval\"('s')",
    "SELECT setval(pg_get_serial_sequence('t','id'), 1)",
    "SELECT * FROM nextval('s')",
    "SELECT txid_current() FROM t",
    "SELECT pg_current_xact_id()::text",
    "SELECT pg_notify('x','y') FROM t",
    "SELECT pg_catalog.pg_notify('x','y')",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
    "SELECT pg_cancel_backend(pg_backend_pid())",
    "SELECT lo_import('/etc/passwd', 1234)",
    "SELECT lo_put(1, 0, 'x')",
    "SELECT lo_truncate(lo_open(1,1), 0)",
    "SELECT lowrite(lo_open(1,131072), 'x')",
    "SELECT lo_close(0)",
    "SELECT pg_advisory_unlock_all()",
    "SELECT pg_advisory_lock_shared(1)",
    "SELECT pg_try_advisory_lock(1,2)",
    "SELECT pg_catalog.pg_try_advisory_lock(1)",
    "SELECT * FROM pg_try_advisory_lock(1)",
    "SELECT set_config('default_transaction_read_only','off',false)",
    "SELECT set_config('role','postgres',true)",
    "SELECT set_config('search_path','evil',true)",
    "SELECT set_config('statement_timeout','0',false)",
    "SELECT pg_catalog.pg_read_file('/etc/passwd')",
    "SELECT pg_read_file('/etc/passwd', 0, 100)",
    "SELECT pg_read_binary_file('/etc/passwd', 0, 100, true)",
    "SELECT convert_from(pg_read_binary_file('postgresql.auto.conf'), 'UTF8')",
    "SELECT * FROM pg_ls_dir('/tmp') d",
    "SELECT pg_stat_file('/tmp', true)",
    "SELECT brin_summarize_range('i', 0)",
    "SELECT brin_desummarize_range('i', 0)",
    "SELECT pg_catalog.brin_summarize_new_values('i'::regclass)",
    "SELECT gin_clean_pending_list('i'::regclass)",
    "SELECT pg_nextoid('pg_proc'::regclass, 'oid', 'pg_proc_oid_index'::regclass)",
    "SELECT setseed(0)",
    "SELECT pg_catalog.setseed(0)",
    "SELECT * FROM setseed(0)",
    "SELECT pg_import_system_collations('public')",
    "SELECT pg_stat_reset_single_function_counters(1)",
    "SELECT pg_stat_reset_shared()",
    "SELECT pg_stat_statements_reset(0,0,0)",
    "SELECT * FROM pg_stat_statements(false)",
    "SELECT pg_create_logical_replication_slot('x','test_decoding',true)",
    "SELECT pg_catalog.pg_backup_start('x', true)",
    "SELECT xslt_process('<a/>', '<x/>')",
    "SELECT xpath_string('<a/>', '/a')",
    "SELECT xpath_list('<a/>', '/a')",
    "SELECT crosstab('select 1')",
    "SELECT * FROM crosstab('select 1,1,1') AS t(a int, b int)",
    "SELECT * FROM connectby('t','id','parent','1',0) AS t(id int, parent int, level int)",
    "SELECT normal_rand(10, 0, 1)",
    "SELECT system_rows(1)",
    "SELECT pg_prewarm('t'::regclass)",
    "SELECT autoprewarm_start_worker()",
    "SELECT pg_buffercache_evict_all()",
    "SELECT pg_buffercache_evict_relation('t')",
    "SELECT bt_index_parent_check('i', true)",
    "SELECT gin_index_check('i')",
    "SELECT pg_surgery_freeze('t', '{}')",
    "SELECT heap_force_kill('t'::regclass, ARRAY['(0,1)'::tid])",
    "SELECT heap_force_freeze('t'::regclass, ARRAY['(0,1)'::tid])",
    "SELECT pg_truncate_visibility_map('t'::regclass)",
    "SELECT pg_log_backend_memory_contexts(pg_backend_pid())",
    "SELECT pg_promote(false)",
    "SELECT pgp_sym_encrypt('a','b')",
    "SELECT gen_salt('bf')",
    "SELECT uuid_generate_v4()",
    "SELECT uuid_generate_v1()",
    "SELECT pg_stat_get_activity(pg_backend_pid())",
    "SELECT (pg_stat_get_activity(NULL)).*",
    "SELECT * FROM pg_stat_get_activity(NULL) AS x",
    "SELECT pg_stat_get_backend_activity(pg_stat_get_backend_idset())",
    "SELECT pg_catalog.pg_stat_get_backend_activity(1)",
    'SELECT "pg_stat_get_backend_activity"(1)',
    "SELECT * FROM pg_catalog.pg_show_all_settings() x",
]

_USERS = Table(
    schema="public",
    name="users",
    kind="table",
    columns=[Column(name="id", type="int"), Column(name="ssn", type="text")],
)
_T = Table(schema="public", name="t", kind="table", columns=[Column(name="k", type="int")])
_DB = DatabaseSchema(name="d", tables=[_USERS, _T])
_HIDE_SSN = Settings(policy=Policy(deny_columns=("public.users.ssn",)))

DENY_COLUMNS_HOLES = [
    "SELECT x FROM users u(i, x)",
    "SELECT u.x FROM users AS u(i, x)",
    "SELECT i FROM users u(i, x)",  # conservative: the list reaches the hidden column
    "SELECT j.ssn FROM (users u CROSS JOIN t) j",
    "SELECT j.* FROM (users u CROSS JOIN t) j",
    "SELECT j FROM (users u CROSS JOIN t) j",
    "SELECT to_json(j) FROM (users u JOIN t ON true) AS j",
    "SELECT j.x FROM (users u CROSS JOIN t) j(a, x)",
    "SELECT j.ssn FROM ((users u CROSS JOIN t) j1 CROSS JOIN t t2) j",
    "SELECT j1.ssn FROM ((users u CROSS JOIN t) j1 CROSS JOIN t t2) j",
    "SELECT j.ssn FROM ((t CROSS JOIN t t3) j1 CROSS JOIN users u) j",
    "SELECT j FROM ((users u CROSS JOIN t) j1 CROSS JOIN t t2) j",
]

HARMLESS_NEIGHBOURS = [  # what the fixes must not refuse
    "SELECT j.id, j.k FROM (users u CROSS JOIN t) j",
    "SELECT j.k FROM ((users u CROSS JOIN t) j1 CROSS JOIN t t2) j",
    "SELECT a FROM t AS x(a)",
    "SELECT j.pid, j.datname FROM (pg_stat_activity a JOIN pg_database d ON true) j",
    "SELECT j.x FROM (pg_class c JOIN pg_namespace n ON true) j(x)",
    "SELECT proname, prosrc FROM pg_proc",
    "SELECT relname FROM pg_class c(oid2, relname)",
    "SELECT current_setting('search_path'), current_setting('work_mem')",
    "SELECT current_setting('TimeZone'), current_setting('server_version_num')",
]


@pytest.mark.parametrize("sql", HOLES)
def test_hole_is_refused(sql: str) -> None:
    v = validate_sql(sql)
    assert not v.ok and v.code == "ACCESS_DENIED", (sql, v.code, v.message)


@pytest.mark.parametrize("sql", REGRESSION)
def test_regression_refused(sql: str) -> None:
    v = validate_sql(sql)
    assert not v.ok, (sql, v.message)


@pytest.mark.parametrize("sql", DENY_COLUMNS_HOLES)
@pytest.mark.parametrize("with_schema", [True, False], ids=["schema", "no-schema"])
def test_hidden_column_not_reached_by_renaming(sql: str, with_schema: bool) -> None:
    v = validate_sql(sql, schema=_DB if with_schema else None, settings=_HIDE_SSN)
    assert not v.ok and v.code == "ACCESS_DENIED", (sql, v.code, v.message)


@pytest.mark.parametrize("sql", HARMLESS_NEIGHBOURS)
def test_harmless_neighbours_stay_accepted(sql: str) -> None:
    v = validate_sql(sql, schema=_DB, settings=_HIDE_SSN) if "users" in sql else validate_sql(sql)
    assert v.ok, (sql, v.code, v.message)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1\x00",
        "SELECT '\ud800'",
        "SELECT " + "(" * 5000 + "1" + ")" * 5000,
        "SELECT " + "-" * 100000,
        "SELECT 1 FROM tab x0" + "".join(f" JOIN tab x{i} ON true" for i in range(1, 3000)),
        'SELECT "' + "x" * 70000 + '"',
        'SELECT U&"\\0000"',
        "WITH " + ", ".join(f"c{i} AS (SELECT 1)" for i in range(3000)) + " SELECT 1",
    ],
    ids=["nul", "surrogate", "nesting", "dashes", "joins", "long-ident", "uescape-nul", "ctes"],
)
def test_odd_input_is_a_refusal_or_a_plain_query_never_a_crash(sql: str) -> None:
    settings = Settings(max_identifiers=2_000)
    v = validate_sql(sql, settings=settings, clock=lambda: 0.0)
    assert v.code in (None, "PARSE_ERROR", "TOO_COMPLEX", "EMPTY", "UNKNOWN_OBJECT"), v.message
    if "JOIN" in sql or "WITH" in sql:
        assert v.code == "TOO_COMPLEX"


# -- the harm, against the embedded PostgreSQL as the least-privilege reader -----------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyZWQtdGVhbSJ9.cmVkLXRlYW0tcm9sZS1zZXR0aW5n"
ROLE = "pgmcp_test_red_role"


@pytest.fixture(scope="module")
def vault(pg_dsn: str, reader_dsn: str) -> Iterator[str]:
    """A database with a table whose long tokens are hidden by the access policy (ANALYZEd, so
    pg_statistic holds a histogram of them, toasted), and a role with a secret role setting
    that the reader can see in pg_roles."""
    setup = (
        "CREATE TABLE vault (id int, token text);"
        "INSERT INTO vault SELECT g, 'tok_' || md5(g::text) || md5((g * 7)::text)"
        " FROM generate_series(1, 500) g;"
        "ANALYZE vault;"
        "CREATE TABLE t (k int); INSERT INTO t VALUES (1);"
    )
    with scratch_database(pg_dsn, setup, "red") as name:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
            conn.execute(f"CREATE ROLE {ROLE}")
            conn.execute(f"ALTER ROLE {ROLE} SET app.jwt_secret = '{JWT}'")
        try:
            yield name
        finally:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(f"DROP ROLE IF EXISTS {ROLE}")


@pytest.fixture
def reader(reader_dsn: str, tmp_path: Path) -> Settings:
    return Settings(dsn=reader_dsn, home=tmp_path, policy=Policy(deny_columns=("*.vault.token",)))


def _tokens(blob: bytes) -> list[bytes]:
    return re.findall(rb"tok_[0-9a-f]{64}", blob)


TOAST_SQL = "SELECT chunk_data FROM pg_toast.pg_toast_2619"
ROLCONFIG_SQL = (
    f"SELECT l FROM pg_roles AS r(a, b, c, d, e, f, g, h, i, j, k, l) WHERE a = '{ROLE}'"
)
JOIN_SQL = "SELECT j.token FROM (vault v CROSS JOIN t) AS j"
RENAME_SQL = "SELECT x FROM vault AS v(i, x)"


def test_control_the_reader_really_reads_them(vault: str, reader_dsn: str) -> None:
    """Without the validator, the reader role (pg_read_all_data) reads every one of them: the
    hidden tokens out of pg_statistic's toast table, the role's secret setting, the hidden
    column through a join alias and a column alias list. So the refusals below matter."""
    with psycopg.connect(db_dsn(reader_dsn, vault)) as conn:
        blob = b"".join(bytes(r[0]) for r in conn.execute(TOAST_SQL).fetchall())
        assert len(_tokens(blob)) >= 50  # the histogram's bounds, in clear
        (conf,) = conn.execute(ROLCONFIG_SQL).fetchone()  # type: ignore[misc]
        assert conf == [f"app.jwt_secret={JWT}"]
        assert conn.execute(JOIN_SQL).fetchone()[0].startswith("tok_")  # type: ignore[index]
        assert conn.execute(RENAME_SQL).fetchone()[0].startswith("tok_")  # type: ignore[index]


@pytest.mark.parametrize("sql", [TOAST_SQL, ROLCONFIG_SQL, JOIN_SQL, RENAME_SQL])
def test_run_readonly_refuses_them(vault: str, reader: Settings, sql: str) -> None:
    result = run_readonly(sql, vault, settings=reader)
    assert not result.ok and result.code == "ACCESS_DENIED", result.to_dict()
    text = str(result.to_dict())
    assert JWT not in text and "tok_" not in text


def test_the_neighbours_still_run(vault: str, reader: Settings) -> None:
    result = run_readonly(
        "SELECT j.id, j.k FROM (vault v CROSS JOIN t) AS j LIMIT 1", vault, settings=reader
    )
    assert result.ok, result.to_dict()


# -- a user-defined operator runs the function behind it -------------------------------------

OPERATOR_SQL = "SELECT 1 OPERATOR(public.#~#) 2"


@pytest.fixture(scope="module")
def trap(pg_dsn: str) -> Iterator[str]:
    """A database whose owner planted an operator over a VOLATILE function that terminates the
    sessions named red_victim (the direct call public.kill(1, 2) is FUNCTION_NOT_ALLOWED)."""
    setup = (
        "CREATE FUNCTION public.kill(int, int) RETURNS bool VOLATILE LANGUAGE plpgsql AS $$"
        "BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'red_victim'; RETURN true; END $$;"
        "CREATE OPERATOR public.#~# (LEFTARG = int, RIGHTARG = int, FUNCTION = public.kill);"
        "CREATE TABLE t (k int); INSERT INTO t VALUES (1);"
        "CREATE FUNCTION public.killrow(t) RETURNS bool VOLATILE LANGUAGE sql AS"
        " $$SELECT public.kill(1, 2)$$"
    )
    with scratch_database(pg_dsn, setup, "red_op") as name:
        yield name


def _victim(reader_dsn: str, db: str) -> psycopg.Connection:
    return psycopg.connect(db_dsn(reader_dsn, db), application_name="red_victim", autocommit=True)


@pytest.mark.parametrize("sql", [OPERATOR_SQL, "SELECT (t).killrow FROM t"])
def test_control_the_planted_function_kills_a_session(trap: str, reader_dsn: str, sql: str) -> None:
    victim = _victim(reader_dsn, trap)
    with psycopg.connect(db_dsn(reader_dsn, trap), autocommit=True) as conn:
        assert conn.execute(sql).fetchone() == (True,)
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    victim.close()


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        (OPERATOR_SQL, "FUNCTION_NOT_ALLOWED"),
        ("SELECT 1 OPERATOR(#~#) 2", "FUNCTION_NOT_ALLOWED"),
        ('SELECT 1 OPERATOR("public".#~#) 2', "FUNCTION_NOT_ALLOWED"),
        # attribute notation over a parenthesised row: (t).killrow is killrow(t)
        ("SELECT (t).killrow FROM t", "FUNCTION_NOT_ALLOWED"),
        ("SELECT (t.*).killrow FROM t", "FUNCTION_NOT_ALLOWED"),
        ("SELECT t.killrow FROM t", "FUNCTION_NOT_ALLOWED"),  # already refused at 581eb17
    ],
)
def test_a_hidden_user_function_call_is_refused(
    trap: str, reader_dsn: str, tmp_path: Path, sql: str, code: str
) -> None:
    victim = _victim(reader_dsn, trap)
    try:
        result = run_readonly(sql, trap, settings=Settings(dsn=reader_dsn, home=tmp_path))
        assert not result.ok and result.code == code, result.to_dict()
        assert victim.execute("SELECT 1").fetchone() == (1,)
    finally:
        victim.close()


def test_pg_catalog_operators_stay_accepted() -> None:
    assert validate_sql("SELECT 1 OPERATOR(pg_catalog.+) 2, 'a' OPERATOR(pg_catalog.~~) 'a%'").ok

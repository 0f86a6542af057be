-- bench/run's pgbench reference: one single-row insert per transaction (an
-- autocommitted statement), the row an accept of bench/api_single.lua's
-- message stores: the limit of one committed transaction per accept on this
-- server. Run: pgbench -n -c 64 -j 2 -T SECS -f bench/pgbench_insert.sql,
-- with search_path set to the schema of bench/pgbench_table.sql.
INSERT INTO pgbench_messages (id, channel, body, created_at)
VALUES (gen_random_uuid()::text, 'held',
        '{"title":null,"body":{"type":"text","text":"benchmark message 告警: disk 91% full on db-1"},"mentions":{"all":false,"users":[],"mobiles":[]},"recipients":[]}',
        (extract(epoch FROM clock_timestamp()) * 1000)::bigint);

-- pg-mcp legitimate analytic queries: every one must be accepted by validate_sql (with and
-- without the database schema) and must run on PostgreSQL in a read-only transaction.
-- Each query starts with a line "-- @@ what it shows" and runs to the next such line.
-- Tables come from tests/corpus/legit_setup.sql (customers, products, orders, order_items,
-- hr.employees, the view customer_totals, the materialized view daily_sales).

-- @@ simple aggregate with a trailing semicolon
SELECT count(*) FROM orders;

-- @@ join, group, order, limit
SELECT c.name, count(*) AS n, sum(o.total) AS spent
FROM customers c JOIN orders o ON o.customer_id = c.id
WHERE o.status IN ('paid', 'shipped')
GROUP BY c.name
ORDER BY spent DESC, c.name
LIMIT 10

-- @@ window functions: rank, running total, lag
SELECT o.id, o.customer_id, o.total,
       rank() OVER (PARTITION BY o.customer_id ORDER BY o.total DESC) AS rnk,
       sum(o.total) OVER (PARTITION BY o.customer_id ORDER BY o.created_at
                          ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running,
       lag(o.total) OVER (ORDER BY o.created_at) AS previous
FROM orders o
ORDER BY o.customer_id, rnk
LIMIT 50

-- @@ named window
SELECT id, total, avg(total) OVER w AS moving_avg, row_number() OVER w AS rn
FROM orders
WINDOW w AS (ORDER BY created_at ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)
ORDER BY id

-- @@ ntile and percent_rank
SELECT id, price, ntile(4) OVER (ORDER BY price) AS quartile,
       round(percent_rank() OVER (ORDER BY price)::numeric, 3) AS pr
FROM products

-- @@ first_value / last_value with a frame
SELECT DISTINCT category,
       first_value(name) OVER (PARTITION BY category ORDER BY price) AS cheapest,
       last_value(name) OVER (PARTITION BY category ORDER BY price
                              RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS priciest
FROM products
ORDER BY category

-- @@ CTE chain
WITH monthly AS (
    SELECT date_trunc('month', created_at) AS month, sum(total) AS revenue
    FROM orders WHERE status <> 'cancelled' GROUP BY 1
), ranked AS (
    SELECT month, revenue, lag(revenue) OVER (ORDER BY month) AS prev FROM monthly
)
SELECT month, revenue, round(100.0 * (revenue - prev) / nullif(prev, 0), 1) AS growth_pct
FROM ranked ORDER BY month

-- @@ recursive CTE: the management chain
WITH RECURSIVE chain AS (
    SELECT id, name, manager_id, 1 AS depth FROM hr.employees WHERE manager_id IS NULL
    UNION ALL
    SELECT e.id, e.name, e.manager_id, c.depth + 1
    FROM hr.employees e JOIN chain c ON e.manager_id = c.id
)
SELECT * FROM chain ORDER BY depth, id

-- @@ recursive CTE with a column list: counting
WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 10)
SELECT sum(n) FROM t

-- @@ MATERIALIZED CTE
WITH big AS MATERIALIZED (SELECT * FROM orders WHERE total > 50)
SELECT count(*) FROM big

-- @@ LATERAL subquery: top order per customer
SELECT c.id, c.name, top.id AS order_id, top.total
FROM customers c
CROSS JOIN LATERAL (
    SELECT o.id, o.total FROM orders o WHERE o.customer_id = c.id ORDER BY o.total DESC LIMIT 1
) top
ORDER BY c.id

-- @@ LEFT JOIN LATERAL ... ON true
SELECT c.id, recent.n
FROM customers c
LEFT JOIN LATERAL (SELECT count(*) AS n FROM orders o WHERE o.customer_id = c.id
                   AND o.created_at > c.created_at) recent ON true
ORDER BY c.id

-- @@ LATERAL set-returning function over a JSON array
SELECT c.id, tag
FROM customers c, LATERAL unnest(c.tags) AS tag
WHERE tag = 'vip'

-- @@ DISTINCT ON
SELECT DISTINCT ON (customer_id) customer_id, id, total
FROM orders
ORDER BY customer_id, total DESC, id

-- @@ GROUPING SETS
SELECT c.country, o.status, count(*) AS n
FROM orders o JOIN customers c ON c.id = o.customer_id
GROUP BY GROUPING SETS ((c.country, o.status), (c.country), ())
ORDER BY 1, 2

-- @@ ROLLUP with GROUPING()
SELECT category, GROUPING(category) AS is_total, sum(price) AS value
FROM products
GROUP BY ROLLUP (category)
ORDER BY 2, 1

-- @@ CUBE
SELECT c.country, o.status, sum(o.total)
FROM orders o JOIN customers c ON c.id = o.customer_id
GROUP BY CUBE (c.country, o.status)

-- @@ aggregate FILTER
SELECT count(*) FILTER (WHERE status = 'paid') AS paid,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       avg(total) FILTER (WHERE total > 50) AS avg_big
FROM orders

-- @@ percentile_cont WITHIN GROUP
SELECT category,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY price) AS median_price,
       percentile_disc(0.9) WITHIN GROUP (ORDER BY price) AS p90
FROM products GROUP BY category

-- @@ mode() WITHIN GROUP
SELECT mode() WITHIN GROUP (ORDER BY country) FROM customers

-- @@ JSON operators -> and ->>
SELECT id, profile -> 'address' ->> 'city' AS city, (profile ->> 'age')::int AS age
FROM customers
WHERE profile ->> 'lang' = 'fr'

-- @@ JSON containment @> and key existence ?
SELECT id, name FROM products WHERE attrs @> '{"color": "red"}' AND attrs ? 'weight'

-- @@ JSON path #>> and jsonb_array_elements
SELECT profile #>> '{address,city}' AS city, count(*)
FROM customers GROUP BY 1 ORDER BY 1

-- @@ jsonb aggregation
SELECT category, jsonb_agg(jsonb_build_object('id', id, 'price', price) ORDER BY id) AS items
FROM products GROUP BY category

-- @@ jsonb_each over a table column
SELECT p.id, kv.key, kv.value
FROM products p, jsonb_each(p.attrs) AS kv
WHERE p.id < 4

-- @@ array ANY
SELECT id FROM customers WHERE 'vip' = ANY (tags)

-- @@ array overlap and containment
SELECT count(*) FROM customers WHERE tags && ARRAY['vip'] AND tags @> ARRAY['newsletter']

-- @@ unnest WITH ORDINALITY
SELECT u.x, u.pos FROM unnest(ARRAY['a', 'b', 'c']) WITH ORDINALITY AS u(x, pos)

-- @@ array_agg with ORDER BY and array functions
SELECT customer_id, array_agg(id ORDER BY id) AS ids, array_length(array_agg(id), 1) AS n
FROM orders GROUP BY customer_id HAVING count(*) > 4 ORDER BY customer_id

-- @@ full-text search
SELECT id, name FROM products
WHERE to_tsvector('english', description) @@ plainto_tsquery('english', 'garden tools')

-- @@ full-text ranking
SELECT id, ts_rank(to_tsvector('english', description), to_tsquery('english', 'cat | game')) AS rank
FROM products ORDER BY rank DESC, id LIMIT 5

-- @@ information_schema: columns of a table
SELECT column_name, data_type, is_nullable
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = 'orders'
ORDER BY ordinal_position

-- @@ information_schema: tables
SELECT table_schema, table_name, table_type FROM information_schema.tables
WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2

-- @@ pg_catalog: table sizes
SELECT c.relname, pg_total_relation_size(c.oid) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY bytes DESC

-- @@ pg_catalog: foreign keys
SELECT conname, conrelid::regclass AS tbl, pg_get_constraintdef(oid) AS def
FROM pg_catalog.pg_constraint WHERE contype = 'f' ORDER BY conname

-- @@ pg_stat views and settings readers
SELECT current_setting('server_version_num')::int > 90000 AS modern, count(*) AS backends
FROM pg_stat_activity

-- @@ pg_roles instead of pg_authid
SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user

-- @@ generate_series calendar with a left join
SELECT d::date AS day, coalesce(sum(o.total), 0) AS revenue
FROM generate_series(date '2024-02-01', date '2024-02-10', interval '1 day') AS d
LEFT JOIN orders o ON o.created_at::date = d::date
GROUP BY d ORDER BY d

-- @@ generate_series in the select list
SELECT generate_series(1, 5) AS n

-- @@ EXPLAIN without ANALYZE
EXPLAIN SELECT * FROM orders WHERE customer_id = 3

-- @@ EXPLAIN with options and ANALYZE false
EXPLAIN (ANALYZE false, COSTS true, FORMAT JSON) SELECT count(*) FROM orders

-- @@ EXPLAIN VERBOSE of a CTE query
EXPLAIN VERBOSE WITH x AS (SELECT 1 AS a) SELECT a FROM x

-- @@ VALUES
VALUES (1, 'one'), (2, 'two'), (3, 'three')

-- @@ VALUES with ORDER BY and LIMIT
VALUES (3), (1), (2) ORDER BY 1 LIMIT 2

-- @@ VALUES as a derived table
SELECT v.code, v.label FROM (VALUES ('FR', 'France'), ('DE', 'Germany')) AS v(code, label)
JOIN customers c ON c.country = v.code
GROUP BY v.code, v.label ORDER BY v.code

-- @@ TABLE
TABLE products

-- @@ TABLE of a view
TABLE customer_totals

-- @@ UNION ALL
SELECT 'customer' AS kind, count(*) FROM customers
UNION ALL
SELECT 'order', count(*) FROM orders

-- @@ INTERSECT and EXCEPT
(SELECT customer_id FROM orders WHERE status = 'paid'
 INTERSECT
 SELECT customer_id FROM orders WHERE status = 'shipped')
EXCEPT
SELECT id FROM customers WHERE country = 'FR'
ORDER BY 1

-- @@ parenthesised set operation
(SELECT id FROM customers ORDER BY id LIMIT 2) UNION (SELECT id FROM customers ORDER BY id DESC LIMIT 2)

-- @@ correlated EXISTS
SELECT c.id FROM customers c
WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.total > 90)
ORDER BY c.id

-- @@ NOT EXISTS with SELECT *
SELECT p.id FROM products p
WHERE NOT EXISTS (SELECT * FROM order_items oi WHERE oi.product_id = p.id)

-- @@ IN subquery and scalar subquery
SELECT name, (SELECT max(total) FROM orders o WHERE o.customer_id = customers.id) AS best
FROM customers
WHERE id IN (SELECT customer_id FROM orders WHERE status = 'paid')
ORDER BY id LIMIT 5

-- @@ CASE and COALESCE
SELECT id, CASE WHEN total >= 80 THEN 'large' WHEN total >= 40 THEN 'medium' ELSE 'small' END AS size,
       coalesce(nullif(status::text, 'pending'), 'waiting') AS state
FROM orders ORDER BY id LIMIT 20

-- @@ date arithmetic and extract
SELECT extract(year FROM created_at) AS y, extract(month FROM created_at) AS m,
       date_trunc('week', created_at)::date AS wk, count(*)
FROM orders
WHERE created_at >= timestamptz '2024-02-01' AND created_at < timestamptz '2024-02-01' + interval '30 days'
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3

-- @@ age and intervals
SELECT name, age(date '2025-01-01', hired) AS tenure
FROM hr.employees WHERE hired < current_date - interval '1 year'

-- @@ string functions and LIKE / ILIKE
SELECT upper(left(name, 3)) AS prefix, count(*)
FROM customers WHERE email ILIKE '%@example.com' AND name LIKE 'customer%'
GROUP BY 1

-- @@ regular expressions
SELECT name FROM customers WHERE name ~ '^customer [0-9]+$' AND regexp_replace(name, '[^0-9]', '', 'g')::int < 5

-- @@ string_agg and concatenation
SELECT country, string_agg(name || ' <' || email || '>', '; ' ORDER BY id) AS contacts
FROM customers GROUP BY country

-- @@ a string literal holding a semicolon and a comment marker
SELECT 'a; b -- c /* d */' AS text, length('x;y') AS n

-- @@ dollar-quoted string with a semicolon
SELECT $$it's; fine$$ AS a, $tag$ $$ ; $tag$ AS b

-- @@ E'' string with escapes
SELECT E'tab\there\nnewline; done', E'quote \' inside'

-- @@ comments everywhere, nested block comments
/* leading comment; with a semicolon */
SELECT 1 /* inline /* nested ; */ still comment */ AS one -- trailing; comment

-- @@ quoted identifiers and aliases
SELECT "c"."name" AS "Customer Name", c.id AS "id;x" FROM customers AS "c" WHERE "c".id = 1

-- @@ schema-qualified names
SELECT e.name, m.name AS manager
FROM hr.employees e LEFT JOIN hr.employees m ON m.id = e.manager_id
ORDER BY e.id

-- @@ view and materialized view
SELECT t.name, t.total, d.revenue
FROM customer_totals t CROSS JOIN (SELECT max(revenue) AS revenue FROM daily_sales) d
ORDER BY t.total DESC LIMIT 3

-- @@ an IMMUTABLE user function
SELECT id, price, discounted(price, 10) AS sale_price FROM products ORDER BY id LIMIT 5

-- @@ enum comparison and cast
SELECT status, count(*) FROM orders WHERE status >= 'paid'::order_status GROUP BY status ORDER BY status

-- @@ BETWEEN, IS DISTINCT FROM, NULLS LAST
SELECT id, email FROM customers
WHERE id BETWEEN 5 AND 15 AND country IS DISTINCT FROM 'US'
ORDER BY email NULLS LAST

-- @@ FETCH FIRST and OFFSET
SELECT id FROM orders ORDER BY id OFFSET 10 ROWS FETCH FIRST 5 ROWS ONLY

-- @@ conditional aggregates with a HAVING
SELECT customer_id, sum(total) AS spent FROM orders
GROUP BY customer_id HAVING sum(total) > 250 AND count(*) >= 3 ORDER BY spent DESC

-- @@ system columns and casts to regclass
SELECT ctid, xmin, tableoid::regclass FROM products WHERE id = 1

-- @@ GROUP BY an output alias, ORDER BY an output alias
SELECT country AS land, count(*) AS n FROM customers GROUP BY land ORDER BY n DESC, land

-- @@ harmless builtins: now, random, md5, pg_backend_pid
SELECT now() IS NOT NULL AS ok, random() < 2 AS r, md5('x') AS h, pg_backend_pid() > 0 AS pid

-- @@ ROW comparison and composite value
SELECT count(*) FROM orders WHERE (customer_id, total) > (10, 50)

-- @@ join USING and NATURAL JOIN
SELECT count(*) FROM order_items JOIN orders ON orders.id = order_items.order_id
JOIN products USING (price)

-- @@ TABLESAMPLE
SELECT count(*) >= 0 FROM orders TABLESAMPLE SYSTEM (50) REPEATABLE (42)

-- @@ whole-row reference turned into JSON
SELECT row_to_json(p) FROM products p WHERE p.id = 1

-- @@ currval-free sequence metadata
SELECT sequencename FROM pg_sequences ORDER BY 1

-- @@ leading parenthesis around the whole query
(SELECT count(*) FROM customers)

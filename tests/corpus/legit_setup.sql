-- Scratch schema for tests/corpus/legit.sql (created in a fresh database by
-- tests/test_validator_corpus.py). Small, deterministic data.
CREATE SCHEMA hr;
CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'cancelled');
CREATE TABLE customers (
    id int PRIMARY KEY,
    name text NOT NULL,
    email text,
    country text,
    created_at timestamptz NOT NULL,
    tags text[] NOT NULL DEFAULT '{}',
    profile jsonb
);
CREATE TABLE products (
    id int PRIMARY KEY,
    name text NOT NULL,
    category text NOT NULL,
    price numeric(10, 2) NOT NULL,
    attrs jsonb NOT NULL DEFAULT '{}',
    description text
);
CREATE TABLE orders (
    id int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers,
    status order_status NOT NULL,
    created_at timestamptz NOT NULL,
    total numeric(12, 2) NOT NULL
);
CREATE TABLE order_items (
    order_id int REFERENCES orders,
    product_id int REFERENCES products,
    qty int NOT NULL,
    price numeric(10, 2) NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE TABLE hr.employees (
    id int PRIMARY KEY,
    name text NOT NULL,
    manager_id int REFERENCES hr.employees,
    dept text NOT NULL,
    salary numeric(10, 2),
    hired date NOT NULL
);
CREATE VIEW customer_totals AS
    SELECT c.id, c.name, coalesce(sum(o.total), 0) AS total
    FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
    GROUP BY c.id, c.name;
CREATE FUNCTION discounted(p numeric, pct int) RETURNS numeric
    LANGUAGE sql IMMUTABLE AS 'SELECT round(p * (100 - pct) / 100.0, 2)';
CREATE FUNCTION touch_counter() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';

INSERT INTO customers
SELECT g, 'customer ' || g, 'c' || g || '@example.com',
       (ARRAY['FR', 'DE', 'CN', 'US'])[1 + g % 4],
       timestamptz '2024-01-01' + g * interval '3 days',
       CASE WHEN g % 3 = 0 THEN ARRAY['vip', 'newsletter'] ELSE ARRAY['newsletter'] END,
       jsonb_build_object('age', 20 + g % 40, 'lang', (ARRAY['fr', 'de', 'zh', 'en'])[1 + g % 4],
                          'address', jsonb_build_object('city', 'city ' || g % 5))
FROM generate_series(1, 40) g;
INSERT INTO products
SELECT g, 'product ' || g, (ARRAY['books', 'games', 'tools'])[1 + g % 3], 5 + g * 1.5,
       jsonb_build_object('color', (ARRAY['red', 'blue', 'green'])[1 + g % 3], 'weight', g),
       'a fine ' || (ARRAY['book about cats', 'game for friends', 'tool for gardens'])[1 + g % 3]
FROM generate_series(1, 15) g;
INSERT INTO orders
SELECT g, 1 + g % 40, (ARRAY['pending', 'paid', 'shipped', 'cancelled'])[1 + g % 4]::order_status,
       timestamptz '2024-02-01' + g * interval '17 hours', 10 + (g * 7) % 90
FROM generate_series(1, 200) g;
INSERT INTO order_items
SELECT o, 1 + (o * k) % 15, 1 + k, 5 + k
FROM generate_series(1, 200) o, generate_series(1, 3) k
ON CONFLICT DO NOTHING;
INSERT INTO hr.employees VALUES
    (1, 'Ada', NULL, 'eng', 200000, '2015-03-01'),
    (2, 'Grace', 1, 'eng', 150000, '2017-06-15'),
    (3, 'Linus', 1, 'eng', 140000, '2018-01-10'),
    (4, 'Barbara', 2, 'eng', 120000, '2020-09-01'),
    (5, 'Edgar', NULL, 'data', 170000, '2016-11-20'),
    (6, 'Jim', 5, 'data', 110000, '2021-02-01');
CREATE MATERIALIZED VIEW daily_sales AS
    SELECT created_at::date AS day, sum(total) AS revenue FROM orders GROUP BY 1;
ANALYZE;
